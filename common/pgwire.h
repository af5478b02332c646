/*
 * pgwire.h - PostgreSQL v3 wire protocol: decoding of what a client sends, the
 * encoders for what a server answers, and a session state machine that turns
 * client bytes into server bytes.  Pure functions of their buffers: no I/O, no
 * allocation, so the whole thing is fuzzed (tests/fuzz/pgwire_fuzz.c).
 *
 * Session states (transition table; each row names the function):
 *
 *   STARTUP --SSLRequest/GSSENCRequest--> STARTUP   (answer 'N')    pgw_session_feed
 *   STARTUP --StartupMessage v3.0------> READY     (AuthOk, params) pgw_session_feed
 *   STARTUP --StartupMessage, password-> AUTH      (cleartext request)
 *   AUTH    --right PasswordMessage----> READY     (AuthOk, params) pgw_session_feed
 *   AUTH    --wrong password/other-----> CLOSED    (FATAL 28P01)
 *   STARTUP --CancelRequest/bad---------> CLOSED                     pgw_session_feed
 *   READY   --Query--------------------> READY     (query handler)  pgw_session_feed
 *   READY   --Query switching----------> COPYBOTH  (CopyBothResponse) pgw_session_feed
 *   COPYBOTH: the session consumes nothing more; the connection's owner decodes
 *             CopyData itself (pglisten.c and the page service)
 *   READY   --Terminate/bad/unsupported> CLOSED                     pgw_session_feed
 */
#ifndef AR_COMMON_PGWIRE_H
#define AR_COMMON_PGWIRE_H

#include "common/limits.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGW_PROTOCOL_V3 196608u /* 3.0 */
#define PGW_SSL_REQUEST 80877103u
#define PGW_GSSENC_REQUEST 80877104u
#define PGW_CANCEL_REQUEST 80877102u

enum pgw_startup_kind {
	PGW_STARTUP_SSL,
	PGW_STARTUP_GSSENC,
	PGW_STARTUP_CANCEL,
	PGW_STARTUP_V3,
};

struct pgw_param {
	const char *name; /* points into the decoded packet, NUL-terminated */
	const char *value;
};

struct pgw_startup {
	enum pgw_startup_kind kind;
	uint32_t param_count;
	struct pgw_param params[AR_PG_STARTUP_PARAMS_MAX];
};

/* Decode a startup-phase packet from buf.  Returns the packet's length (> 0) when
 * one is complete, 0 when more bytes are needed, -AR_EPROTO when malformed.
 * err (may be NULL) names what is wrong. */
int pgw_startup_decode(const uint8_t *buf, size_t len, struct pgw_startup *out, const char **err);

/* A regular message: type byte, int32 length (counting itself), body. */
struct pgw_message {
	uint8_t type;
	const uint8_t *body;
	uint32_t body_len;
};

/* Same return convention as pgw_startup_decode. */
int pgw_message_decode(const uint8_t *buf, size_t len, struct pgw_message *out, const char **err);

/* An output buffer; writes past cap set overflow and are dropped whole. */
struct pgw_out {
	uint8_t *data;
	size_t cap;
	size_t len;
	bool overflow;
};

void pgw_put_byte(struct pgw_out *out, uint8_t byte);
void pgw_put_auth_ok(struct pgw_out *out);
void pgw_put_parameter_status(struct pgw_out *out, const char *name, const char *value);
void pgw_put_backend_key(struct pgw_out *out, uint32_t pid, uint32_t secret);
void pgw_put_ready(struct pgw_out *out, char status);
/* severity: "ERROR" or "FATAL"; hint may be NULL. */
void pgw_put_error(struct pgw_out *out, const char *severity, const char *sqlstate,
		   const char *message, const char *hint);
/* A row description of text columns. */
void pgw_put_row_description(struct pgw_out *out, uint32_t column_count, const char *const *names);
void pgw_put_data_row(struct pgw_out *out, uint32_t column_count, const char *const *values);
void pgw_put_command_complete(struct pgw_out *out, const char *tag);
void pgw_put_empty_query(struct pgw_out *out);
/* CopyBothResponse: overall format text, no columns (what Neon's page service sends). */
void pgw_put_copy_both_response(struct pgw_out *out);
/* CopyData carrying len bytes of payload. */
void pgw_put_copy_data(struct pgw_out *out, const uint8_t *payload, size_t len);

enum pgw_state {
	PGW_STATE_STARTUP,
	PGW_STATE_AUTH,
	PGW_STATE_READY,
	PGW_STATE_COPYBOTH,
	PGW_STATE_CLOSED,
};

/* Answers one simple query: write RowDescription/DataRow/CommandComplete or an
 * ErrorResponse to out (not ReadyForQuery: the session adds it) and return
 * PGW_QUERY_DONE; or write CopyBothResponse and return PGW_QUERY_COPYBOTH. */
enum { PGW_QUERY_DONE = 0, PGW_QUERY_COPYBOTH = 1 };
typedef int pgw_query_fn(void *ctx, const char *query, struct pgw_out *out);

struct pgw_session {
	enum pgw_state state;
	uint32_t backend_pid; /* reported in BackendKeyData */
	uint32_t backend_secret;
	pgw_query_fn *query_fn;
	void *query_ctx;
	const char *password; /* NULL: trust */
	char application_name[64];
	char user[64];
};

void pgw_session_init(struct pgw_session *session, uint32_t backend_pid, uint32_t backend_secret,
		      pgw_query_fn *query_fn, void *query_ctx);

/* Ask the client for this password (a token) before the session is ready; the
 * string is borrowed for the session's life. */
void pgw_session_require_password(struct pgw_session *session, const char *password);

/* Consume whole packets from in (up to len); answers go to out.  Returns bytes
 * consumed (0: a packet is incomplete).  Stops early once out has less than
 * PGW_SESSION_OUT_RESERVE free, so each answer fits.  After a protocol error
 * the session sends an ErrorResponse and becomes CLOSED; so does Terminate. */
size_t pgw_session_feed(struct pgw_session *session, const uint8_t *in, size_t len,
			struct pgw_out *out);

enum { PGW_SESSION_OUT_RESERVE = 4096 };

#endif
