/*
 * pgwire_test.c - The v3 protocol codec and session: startup, SSL refusal,
 * queries, pipelining, and malformed input that must close the session with an
 * error instead of crashing or reading out of bounds.
 */
#include "common/err.h"
#include "common/pgwire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

static size_t put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return 4;
}

/* A v3 startup packet with the given "name\0value\0" pairs (len bytes). */
static size_t startup_packet(uint8_t *buf, const char *pairs, size_t pairs_len)
{
	size_t n = 4;
	n += put32(buf + n, PGW_PROTOCOL_V3);
	memcpy(buf + n, pairs, pairs_len);
	n += pairs_len;
	buf[n++] = 0;
	put32(buf, (uint32_t)n);
	return n;
}

static size_t query_message(uint8_t *buf, const char *sql)
{
	size_t len = strlen(sql) + 1;
	buf[0] = 'Q';
	put32(buf + 1, (uint32_t)(len + 4));
	memcpy(buf + 5, sql, len);
	return len + 5;
}

static int queries_seen;

static int echo_query(void *ctx, const char *query, struct pgw_out *out)
{
	const char *names[] = { "q" };
	const char *values[] = { query };
	(void)ctx;
	queries_seen++;
	if (strcmp(query, "copy") == 0) {
		pgw_put_copy_both_response(out);
		return PGW_QUERY_COPYBOTH;
	}
	pgw_put_row_description(out, 1, names);
	pgw_put_data_row(out, 1, values);
	pgw_put_command_complete(out, "SELECT 1");
	return PGW_QUERY_DONE;
}

/* Message types in out, in order, as a string ("RSSK Z" -> "RSSKZ"). */
static void types_of(const struct pgw_out *out, char *types, size_t size)
{
	size_t pos = 0, n = 0;
	while (pos + 5 <= out->len && n + 1 < size) {
		uint32_t len = (uint32_t)out->data[pos + 1] << 24 |
			       (uint32_t)out->data[pos + 2] << 16 |
			       (uint32_t)out->data[pos + 3] << 8 | out->data[pos + 4];
		types[n++] = (char)out->data[pos];
		pos += 1 + len;
	}
	types[n] = '\0';
}

static void test_startup_decode(void **state)
{
	uint8_t buf[256];
	struct pgw_startup st;
	const char *err = NULL;
	(void)state;

	size_t n = startup_packet(buf, "user\0alice\0database\0db\0", 23);
	assert_int_equal(pgw_startup_decode(buf, n - 1, &st, &err), 0); /* incomplete */
	assert_int_equal(pgw_startup_decode(buf, n, &st, &err), (int)n);
	assert_int_equal(st.kind, PGW_STARTUP_V3);
	assert_int_equal(st.param_count, 2);
	assert_string_equal(st.params[0].name, "user");
	assert_string_equal(st.params[0].value, "alice");

	put32(buf, 8);
	put32(buf + 4, PGW_SSL_REQUEST);
	assert_int_equal(pgw_startup_decode(buf, 8, &st, &err), 8);
	assert_int_equal(st.kind, PGW_STARTUP_SSL);

	put32(buf, 4); /* shorter than its own header */
	assert_int_equal(pgw_startup_decode(buf, 8, &st, &err), -AR_EPROTO);
	put32(buf, 1u << 30); /* absurd length: refused before waiting for it */
	assert_int_equal(pgw_startup_decode(buf, 8, &st, &err), -AR_EPROTO);

	n = startup_packet(buf, "user\0alice", 10); /* value runs into the terminator */
	buf[n - 1] = 'x';
	assert_int_equal(pgw_startup_decode(buf, n, &st, &err), -AR_EPROTO);
	assert_non_null(err);

	put32(buf, 8);
	put32(buf + 4, 2u << 16); /* protocol 2.0 */
	assert_int_equal(pgw_startup_decode(buf, 8, &st, &err), -AR_EPROTO);
	assert_non_null(strstr(err, "unsupported frontend protocol"));
}

static void test_session_flow(void **state)
{
	uint8_t in[1024], outbuf[16384];
	struct pgw_out out = { .data = outbuf, .cap = sizeof(outbuf) };
	struct pgw_session s;
	char types[64];
	(void)state;

	queries_seen = 0;
	pgw_session_init(&s, 7, 42, echo_query, NULL);
	size_t n = 0;
	n += put32(in, 8);
	n += put32(in + n, PGW_SSL_REQUEST);
	assert_int_equal(pgw_session_feed(&s, in, n, &out), n);
	assert_int_equal(out.len, 1);
	assert_int_equal(out.data[0], 'N'); /* SSL refused politely */
	assert_int_equal(s.state, PGW_STATE_STARTUP);

	out.len = 0;
	n = startup_packet(in, "user\0bob\0application_name\0psql\0", 31);
	assert_int_equal(pgw_session_feed(&s, in, n, &out), n);
	types_of(&out, types, sizeof(types));
	assert_string_equal(types, "RSSSSSSSKZ");
	assert_int_equal(s.state, PGW_STATE_READY);
	assert_string_equal(s.application_name, "psql");

	/* Two pipelined queries and half of a third: two answers, in order. */
	out.len = 0;
	n = query_message(in, "select 1");
	n += query_message(in + n, "select 2");
	size_t third = query_message(in + n, "select 3");
	assert_int_equal(pgw_session_feed(&s, in, n + third / 2, &out), n);
	types_of(&out, types, sizeof(types));
	assert_string_equal(types, "TDCZTDCZ");
	assert_int_equal(queries_seen, 2);
	assert_non_null(memmem(out.data, out.len, "select 1", 8));

	out.len = 0;
	n = query_message(in, " ; ");
	assert_int_equal(pgw_session_feed(&s, in, n, &out), n);
	types_of(&out, types, sizeof(types));
	assert_string_equal(types, "IZ"); /* EmptyQueryResponse */

	out.len = 0;
	in[0] = 'X';
	put32(in + 1, 4);
	assert_int_equal(pgw_session_feed(&s, in, 5, &out), 5);
	assert_int_equal(s.state, PGW_STATE_CLOSED);
	assert_int_equal(out.len, 0);
}

static void test_session_bad_input(void **state)
{
	uint8_t in[256], outbuf[16384];
	struct pgw_out out = { .data = outbuf, .cap = sizeof(outbuf) };
	struct pgw_session s;
	char types[64];
	(void)state;

	pgw_session_init(&s, 1, 1, echo_query, NULL);
	size_t n = startup_packet(in, "database\0x\0", 11); /* no user */
	pgw_session_feed(&s, in, n, &out);
	types_of(&out, types, sizeof(types));
	assert_string_equal(types, "E");
	assert_int_equal(s.state, PGW_STATE_CLOSED);
	assert_non_null(memmem(out.data, out.len, "28000", 5));

	out.len = 0;
	pgw_session_init(&s, 1, 1, echo_query, NULL);
	n = startup_packet(in, "user\0u\0", 7);
	pgw_session_feed(&s, in, n, &out);
	out.len = 0;
	in[0] = '!';
	put32(in + 1, 4);
	assert_int_equal(pgw_session_feed(&s, in, 5, &out), 5);
	assert_int_equal(s.state, PGW_STATE_CLOSED);
	assert_non_null(memmem(out.data, out.len, "invalid frontend message type 33", 32));

	/* A query whose string is not terminated inside its message. */
	out.len = 0;
	pgw_session_init(&s, 1, 1, echo_query, NULL);
	n = startup_packet(in, "user\0u\0", 7);
	pgw_session_feed(&s, in, n, &out);
	out.len = 0;
	in[0] = 'Q';
	put32(in + 1, 7);
	memcpy(in + 5, "abc", 3);
	assert_int_equal(pgw_session_feed(&s, in, 8, &out), 8);
	assert_int_equal(s.state, PGW_STATE_CLOSED);
	assert_non_null(memmem(out.data, out.len, "08P01", 5));

	/* A message longer than the limit is refused before its bytes arrive. */
	out.len = 0;
	pgw_session_init(&s, 1, 1, echo_query, NULL);
	n = startup_packet(in, "user\0u\0", 7);
	pgw_session_feed(&s, in, n, &out);
	out.len = 0;
	in[0] = 'Q';
	put32(in + 1, AR_PG_MESSAGE_BYTES_MAX + 100);
	assert_int_equal(pgw_session_feed(&s, in, 5, &out), 5);
	assert_int_equal(s.state, PGW_STATE_CLOSED);
	assert_non_null(memmem(out.data, out.len, "message too long", 16));
}

/* A query that switches to CopyBoth: 'W' with format 0 and no columns, no
 * ReadyForQuery, and nothing after it is consumed by the session. */
static void test_session_copy_both(void **state)
{
	uint8_t in[256], outbuf[16384];
	struct pgw_out out = { .data = outbuf, .cap = sizeof(outbuf) };
	struct pgw_session s;
	(void)state;

	pgw_session_init(&s, 1, 1, echo_query, NULL);
	size_t n = startup_packet(in, "user\0u\0", 7);
	pgw_session_feed(&s, in, n, &out);
	out.len = 0;
	n = query_message(in, "copy");
	memcpy(in + n, "d\0\0\0\5x", 6); /* a CopyData after it stays unread */
	assert_int_equal(pgw_session_feed(&s, in, n + 6, &out), n);
	assert_int_equal(s.state, PGW_STATE_COPYBOTH);
	const uint8_t want[] = { 'W', 0, 0, 0, 7, 0, 0, 0 };
	assert_int_equal(out.len, sizeof(want));
	assert_memory_equal(out.data, want, sizeof(want));
	assert_int_equal(pgw_session_feed(&s, in + n, 6, &out), 0);
}

/* Password authentication: cleartext request, then a wrong and a right password. */
static void test_session_password(void **state)
{
	uint8_t in[256], outbuf[16384];
	struct pgw_out out = { .data = outbuf, .cap = sizeof(outbuf) };
	struct pgw_session s;
	char types[64];
	(void)state;

	for (int right = 0; right < 2; right++) {
		pgw_session_init(&s, 1, 1, echo_query, NULL);
		pgw_session_require_password(&s, "sesame");
		out.len = 0;
		size_t n = startup_packet(in, "user\0u\0", 7);
		assert_int_equal(pgw_session_feed(&s, in, n, &out), n);
		const uint8_t want[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 3 };
		assert_int_equal(out.len, sizeof(want));
		assert_memory_equal(out.data, want, sizeof(want));
		out.len = 0;
		const char *pw = right ? "sesame" : "sesamf";
		in[0] = 'p';
		put32(in + 1, 4 + 7);
		memcpy(in + 5, pw, 7);
		assert_int_equal(pgw_session_feed(&s, in, 12, &out), 12);
		types_of(&out, types, sizeof(types));
		if (right) {
			assert_int_equal(s.state, PGW_STATE_READY);
			assert_int_equal(types[0], 'R');
		} else {
			assert_int_equal(s.state, PGW_STATE_CLOSED);
			assert_string_equal(types, "E");
			assert_non_null(memmem(out.data, out.len, "28P01", 5));
			assert_non_null(
			    memmem(out.data, out.len, "password authentication failed", 30));
		}
	}
}

static void test_encoder_overflow(void **state)
{
	uint8_t buf[16];
	struct pgw_out out = { .data = buf, .cap = sizeof(buf) };
	(void)state;

	pgw_put_ready(&out, 'I');
	assert_int_equal(out.len, 6);
	pgw_put_error(&out, "ERROR", "XX000", "a message much longer than ten bytes", NULL);
	assert_true(out.overflow);
	assert_int_equal(out.len, 6); /* nothing of the error was appended */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_startup_decode),    cmocka_unit_test(test_session_flow),
		cmocka_unit_test(test_session_bad_input), cmocka_unit_test(test_session_copy_both),
		cmocka_unit_test(test_session_password),  cmocka_unit_test(test_encoder_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
