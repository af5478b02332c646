/*
 * pgwire.c - PostgreSQL v3 protocol codec and session state machine.
 *
 * Invariants:
 *  1. A decoder never reads past len and never trusts a length field: every
 *     length is checked against AR_PG_* limits and the bytes at hand.
 *  2. A decoded string is used only if its NUL terminator lies inside its packet.
 *  3. An encoder either appends a whole message or nothing (overflow is flagged).
 * Depends on: limits.h, err.h.  See the state table in pgwire.h.
 */
#include "common/pgwire.h"
#include "common/bytes.h"

#include "common/assert.h"
#include "common/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static int decode_error(const char **err, const char *what)
{
	if (err)
		*err = what;
	return -AR_EPROTO;
}

int pgw_startup_decode(const uint8_t *buf, size_t len, struct pgw_startup *out, const char **err)
{
	if (len < 8)
		return 0;
	uint32_t packet_len = ar_get_be32(buf);
	if (packet_len < 8 || packet_len > AR_PG_STARTUP_BYTES_MAX)
		return decode_error(err, "invalid length of startup packet");
	if (len < packet_len)
		return 0;
	uint32_t code = ar_get_be32(buf + 4);
	out->param_count = 0;
	switch (code) {
	case PGW_SSL_REQUEST:
	case PGW_GSSENC_REQUEST:
		if (packet_len != 8)
			return decode_error(err, "invalid length of encryption request packet");
		out->kind = code == PGW_SSL_REQUEST ? PGW_STARTUP_SSL : PGW_STARTUP_GSSENC;
		return (int)packet_len;
	case PGW_CANCEL_REQUEST:
		if (packet_len != 16)
			return decode_error(err, "invalid length of cancel request packet");
		out->kind = PGW_STARTUP_CANCEL;
		return (int)packet_len;
	default:
		break;
	}
	if (code >> 16 != 3)
		return decode_error(err, "unsupported frontend protocol: server supports 3.0");
	out->kind = PGW_STARTUP_V3;
	/* name\0value\0 ... \0 — the final NUL must be the packet's last byte. */
	const char *p = (const char *)buf + 8;
	const char *end = (const char *)buf + packet_len;
	for (;;) {
		if (p >= end)
			return decode_error(err, "startup packet is not terminated");
		if (*p == '\0') {
			if (p + 1 != end)
				return decode_error(err,
						    "bytes after the end of the startup packet");
			return (int)packet_len;
		}
		const char *name = p;
		const char *name_end = memchr(name, '\0', (size_t)(end - name));
		if (!name_end || name_end + 1 >= end)
			return decode_error(err, "startup packet parameter has no value");
		const char *value = name_end + 1;
		const char *value_end = memchr(value, '\0', (size_t)(end - value));
		if (!value_end)
			return decode_error(err,
					    "startup packet parameter value is not terminated");
		if (out->param_count == AR_PG_STARTUP_PARAMS_MAX)
			return decode_error(err, "too many parameters in startup packet");
		out->params[out->param_count].name = name;
		out->params[out->param_count].value = value;
		out->param_count++;
		p = value_end + 1;
	}
}

int pgw_message_decode(const uint8_t *buf, size_t len, struct pgw_message *out, const char **err)
{
	if (len < 5)
		return 0;
	uint32_t msg_len = ar_get_be32(buf + 1);
	if (msg_len < 4)
		return decode_error(err, "invalid message length");
	if (msg_len > AR_PG_MESSAGE_BYTES_MAX - 1)
		return decode_error(err, "message too long");
	if (len < (size_t)msg_len + 1)
		return 0;
	out->type = buf[0];
	out->body = buf + 5;
	out->body_len = msg_len - 4;
	return (int)msg_len + 1;
}

/* ---- encoders ---- */

static void put_bytes(struct pgw_out *out, const void *bytes, size_t n)
{
	if (out->overflow || n > out->cap - out->len) {
		out->overflow = true;
		return;
	}
	memcpy(out->data + out->len, bytes, n);
	out->len += n;
}

static void put_u32(struct pgw_out *out, uint32_t v)
{
	uint8_t b[4];
	ar_put_be32(b, v);
	put_bytes(out, b, 4);
}

static void put_u16(struct pgw_out *out, uint16_t v)
{
	uint8_t b[2];
	ar_put_be16(b, v);
	put_bytes(out, b, 2);
}

static void put_str(struct pgw_out *out, const char *s)
{
	put_bytes(out, s, strlen(s) + 1);
}

void pgw_put_byte(struct pgw_out *out, uint8_t byte)
{
	put_bytes(out, &byte, 1);
}

/* Start a message: type and a length placeholder.  Returns where it starts. */
static size_t msg_begin(struct pgw_out *out, uint8_t type)
{
	size_t start = out->len;
	pgw_put_byte(out, type);
	put_u32(out, 0);
	return start;
}

/* Patch the length, or drop the whole message if anything overflowed. */
static void msg_end(struct pgw_out *out, size_t start)
{
	if (out->overflow) {
		out->len = start;
		return;
	}
	ar_put_be32(out->data + start + 1, (uint32_t)(out->len - start - 1));
}

void pgw_put_auth_ok(struct pgw_out *out)
{
	size_t m = msg_begin(out, 'R');
	put_u32(out, 0);
	msg_end(out, m);
}

void pgw_put_parameter_status(struct pgw_out *out, const char *name, const char *value)
{
	size_t m = msg_begin(out, 'S');
	put_str(out, name);
	put_str(out, value);
	msg_end(out, m);
}

void pgw_put_backend_key(struct pgw_out *out, uint32_t pid, uint32_t secret)
{
	size_t m = msg_begin(out, 'K');
	put_u32(out, pid);
	put_u32(out, secret);
	msg_end(out, m);
}

void pgw_put_ready(struct pgw_out *out, char status)
{
	size_t m = msg_begin(out, 'Z');
	pgw_put_byte(out, (uint8_t)status);
	msg_end(out, m);
}

void pgw_put_error(struct pgw_out *out, const char *severity, const char *sqlstate,
		   const char *message, const char *hint)
{
	size_t m = msg_begin(out, 'E');
	pgw_put_byte(out, 'S');
	put_str(out, severity);
	pgw_put_byte(out, 'V');
	put_str(out, severity);
	pgw_put_byte(out, 'C');
	put_str(out, sqlstate);
	pgw_put_byte(out, 'M');
	put_str(out, message);
	if (hint) {
		pgw_put_byte(out, 'H');
		put_str(out, hint);
	}
	pgw_put_byte(out, 0);
	msg_end(out, m);
}

void pgw_put_row_description(struct pgw_out *out, uint32_t column_count, const char *const *names)
{
	size_t m = msg_begin(out, 'T');
	put_u16(out, (uint16_t)column_count);
	for (uint32_t i = 0; i < column_count; i++) {
		put_str(out, names[i]);
		put_u32(out, 0);           /* table oid */
		put_u16(out, 0);           /* column number */
		put_u32(out, 25);          /* type oid: text */
		put_u16(out, 0xffff);      /* type size: -1, variable */
		put_u32(out, 0xffffffffu); /* type modifier: -1 */
		put_u16(out, 0);           /* format: text */
	}
	msg_end(out, m);
}

void pgw_put_data_row(struct pgw_out *out, uint32_t column_count, const char *const *values)
{
	size_t m = msg_begin(out, 'D');
	put_u16(out, (uint16_t)column_count);
	for (uint32_t i = 0; i < column_count; i++) {
		size_t n = strlen(values[i]);
		put_u32(out, (uint32_t)n);
		put_bytes(out, values[i], n);
	}
	msg_end(out, m);
}

void pgw_put_command_complete(struct pgw_out *out, const char *tag)
{
	size_t m = msg_begin(out, 'C');
	put_str(out, tag);
	msg_end(out, m);
}

void pgw_put_empty_query(struct pgw_out *out)
{
	size_t m = msg_begin(out, 'I');
	msg_end(out, m);
}

void pgw_put_copy_both_response(struct pgw_out *out)
{
	size_t m = msg_begin(out, 'W');
	pgw_put_byte(out, 0);
	put_u16(out, 0);
	msg_end(out, m);
}

void pgw_put_copy_data(struct pgw_out *out, const uint8_t *payload, size_t len)
{
	size_t m = msg_begin(out, 'd');
	put_bytes(out, payload, len);
	msg_end(out, m);
}

/* ---- session ---- */

void pgw_session_init(struct pgw_session *session, uint32_t backend_pid, uint32_t backend_secret,
		      pgw_query_fn *query_fn, void *query_ctx)
{
	AR_ASSERT(query_fn != NULL);
	memset(session, 0, sizeof(*session));
	session->state = PGW_STATE_STARTUP;
	session->backend_pid = backend_pid;
	session->backend_secret = backend_secret;
	session->query_fn = query_fn;
	session->query_ctx = query_ctx;
}

static void session_fail(struct pgw_session *session, struct pgw_out *out, const char *sqlstate,
			 const char *message)
{
	pgw_put_error(out, "FATAL", sqlstate, message, NULL);
	session->state = PGW_STATE_CLOSED;
}

void pgw_session_require_password(struct pgw_session *session, const char *password)
{
	session->password = password;
}

/* AuthenticationOk, the parameters a client expects, BackendKeyData, ready. */
static void session_ready(struct pgw_session *session, struct pgw_out *out)
{
	pgw_put_auth_ok(out);
	pgw_put_parameter_status(out, "server_version", "15.0 (Argon)");
	pgw_put_parameter_status(out, "server_encoding", "UTF8");
	pgw_put_parameter_status(out, "client_encoding", "UTF8");
	pgw_put_parameter_status(out, "DateStyle", "ISO, MDY");
	pgw_put_parameter_status(out, "integer_datetimes", "on");
	pgw_put_parameter_status(out, "standard_conforming_strings", "on");
	pgw_put_parameter_status(out, "application_name", session->application_name);
	pgw_put_backend_key(out, session->backend_pid, session->backend_secret);
	pgw_put_ready(out, 'I');
	session->state = PGW_STATE_READY;
}

/* Equal strings, in time that depends only on their lengths. */
static bool secret_equal(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	uint8_t diff = alen != blen;
	for (size_t i = 0; i < alen; i++)
		diff |= (uint8_t)(a[i] ^ b[i % (blen ? blen : 1)]);
	return diff == 0;
}

/* PasswordMessage: the password as a string filling the message. */
static void session_password(struct pgw_session *session, const struct pgw_message *msg,
			     struct pgw_out *out)
{
	char text[160];
	if (msg->type != 'p' || msg->body_len == 0 || msg->body[msg->body_len - 1] != '\0' ||
	    memchr(msg->body, '\0', msg->body_len) != msg->body + msg->body_len - 1) {
		session_fail(session, out, "08P01", "expected password response");
		return;
	}
	if (!secret_equal((const char *)msg->body, msg->body_len - 1, session->password)) {
		snprintf(text, sizeof(text), "password authentication failed for user \"%.64s\"",
			 session->user);
		session_fail(session, out, "28P01", text);
		return;
	}
	session_ready(session, out);
}

static void copy_param(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

static void session_startup(struct pgw_session *session, const struct pgw_startup *st,
			    struct pgw_out *out)
{
	switch (st->kind) {
	case PGW_STARTUP_SSL:
	case PGW_STARTUP_GSSENC:
		pgw_put_byte(out, 'N'); /* no encryption here; the client may go on in clear */
		return;
	case PGW_STARTUP_CANCEL:
		session->state = PGW_STATE_CLOSED; /* nothing to cancel: queries are instant */
		return;
	case PGW_STARTUP_V3:
		break;
	}
	for (uint32_t i = 0; i < st->param_count; i++) {
		if (strcmp(st->params[i].name, "user") == 0)
			copy_param(session->user, sizeof(session->user), st->params[i].value);
		else if (strcmp(st->params[i].name, "application_name") == 0)
			copy_param(session->application_name, sizeof(session->application_name),
				   st->params[i].value);
	}
	if (session->user[0] == '\0') {
		session_fail(session, out, "28000",
			     "no PostgreSQL user name specified in startup packet");
		return;
	}
	if (session->password) {
		size_t m = msg_begin(out, 'R');
		put_u32(out, 3); /* AuthenticationCleartextPassword */
		msg_end(out, m);
		session->state = PGW_STATE_AUTH;
		return;
	}
	session_ready(session, out);
}

static void session_query(struct pgw_session *session, const struct pgw_message *msg,
			  struct pgw_out *out)
{
	if (msg->body_len == 0 || msg->body[msg->body_len - 1] != '\0' ||
	    memchr(msg->body, '\0', msg->body_len) != msg->body + msg->body_len - 1) {
		session_fail(session, out, "08P01", "invalid string in message");
		return;
	}
	const char *query = (const char *)msg->body;
	const char *p = query;
	while (isspace((unsigned char)*p) || *p == ';')
		p++;
	if (*p == '\0') {
		pgw_put_empty_query(out);
	} else if (session->query_fn(session->query_ctx, query, out) == PGW_QUERY_COPYBOTH) {
		session->state = PGW_STATE_COPYBOTH;
		return;
	}
	pgw_put_ready(out, 'I');
}

static void session_message(struct pgw_session *session, const struct pgw_message *msg,
			    struct pgw_out *out)
{
	switch (msg->type) {
	case 'Q':
		session_query(session, msg, out);
		return;
	case 'X':
		session->state = PGW_STATE_CLOSED;
		return;
	case 'S': /* Sync ends an extended-protocol batch */
		pgw_put_ready(out, 'I');
		return;
	case 'P':
	case 'B':
	case 'E':
	case 'D':
	case 'C':
	case 'H':
	case 'F':
		pgw_put_error(out, "ERROR", "0A000", "extended query protocol is not supported",
			      "Use the simple query protocol.");
		return;
	default: {
		char text[64];
		snprintf(text, sizeof(text), "invalid frontend message type %u", msg->type);
		session_fail(session, out, "08P01", text);
		return;
	}
	}
}

size_t pgw_session_feed(struct pgw_session *session, const uint8_t *in, size_t len,
			struct pgw_out *out)
{
	size_t consumed = 0;

	/* Bounded: each pass consumes a whole packet of at least 5 bytes or stops. */
	while ((session->state == PGW_STATE_STARTUP || session->state == PGW_STATE_AUTH ||
		session->state == PGW_STATE_READY) &&
	       consumed < len && out->cap - out->len >= PGW_SESSION_OUT_RESERVE) {
		const char *err = "malformed packet";
		int n;

		if (session->state == PGW_STATE_STARTUP) {
			struct pgw_startup st;
			n = pgw_startup_decode(in + consumed, len - consumed, &st, &err);
			if (n > 0)
				session_startup(session, &st, out);
		} else {
			struct pgw_message msg;
			n = pgw_message_decode(in + consumed, len - consumed, &msg, &err);
			if (n > 0 && session->state == PGW_STATE_AUTH)
				session_password(session, &msg, out);
			else if (n > 0)
				session_message(session, &msg, out);
		}
		if (n == 0)
			break;
		if (n < 0) {
			session_fail(session, out, "08P01", err);
			return len; /* the stream cannot be resynchronised: drop the rest */
		}
		consumed += (size_t)n;
	}
	return consumed;
}
