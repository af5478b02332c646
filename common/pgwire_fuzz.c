/*
 * pgwire_fuzz.c - libFuzzer target for the PostgreSQL wire decoder and session:
 * arbitrary bytes, cut into arbitrary chunks, fed to a session as a socket
 * would.  Checks: no crash or out-of-bounds access (ASan), the session never
 * consumes more than it was given, never overflows its output, and a closed
 * session stays closed.
 */
#include "common/assert.h"
#include "common/pgwire.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int fuzz_query(void *ctx, const char *query, struct pgw_out *out)
{
	const char *names[] = { "q" };
	const char *values[] = { query };
	(void)ctx;
	/* The query is a NUL-terminated string inside the message: read all of it. */
	AR_ASSERT(strlen(query) < AR_PG_MESSAGE_BYTES_MAX);
	pgw_put_row_description(out, 1, names);
	if (strlen(query) < 1024)
		pgw_put_data_row(out, 1, values);
	pgw_put_command_complete(out, "SELECT 1");
	return query[0] == 'c' ? PGW_QUERY_COPYBOTH : PGW_QUERY_DONE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t in[AR_PG_RECV_BUFFER_BYTES];
	static uint8_t out_buf[AR_PG_SEND_BUFFER_BYTES];
	struct pgw_session session;
	size_t in_len = 0;
	size_t pos = 0;

	if (size < 1)
		return 0;
	/* First byte: chunk size of the simulated recv() calls. */
	size_t chunk = (size_t)data[0] + 1;
	pos = 1;
	pgw_session_init(&session, 1, 2, fuzz_query, NULL);
	while (pos < size && session.state != PGW_STATE_CLOSED) {
		size_t n = size - pos < chunk ? size - pos : chunk;
		if (n > sizeof(in) - in_len)
			n = sizeof(in) - in_len;
		memcpy(in + in_len, data + pos, n);
		in_len += n;
		pos += n;
		struct pgw_out out = { .data = out_buf, .cap = sizeof(out_buf) };
		size_t consumed = pgw_session_feed(&session, in, in_len, &out);
		AR_ASSERT(consumed <= in_len);
		AR_ASSERT(!out.overflow);
		AR_ASSERT(out.len <= out.cap);
		memmove(in, in + consumed, in_len - consumed);
		in_len -= consumed;
		if (in_len == sizeof(in))
			break; /* a real connection would have been refused by now */
	}
	return 0;
}
