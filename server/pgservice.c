/*
 * pgservice.c - What the PostgreSQL-protocol listener answers today: health
 * queries, so psql and libpq clients can check a page server.  The page-read
 * commands of the page service arrive with the Page service issue.
 *
 *   SELECT 1            -> one row, "1"
 *   STATUS / SHOW STATUS -> status, version, the answering core, core count
 *   anything else       -> ERROR 0A000 with a hint
 */
#include "server/server.h"

#include "ar_build_config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* query without leading/trailing blanks and trailing semicolons, lower-cased. */
static void pgservice_normalize(const char *query, char *buf, size_t size)
{
	while (isspace((unsigned char)*query))
		query++;
	size_t n = 0;
	for (; query[n] != '\0' && n + 1 < size; n++)
		buf[n] = (char)tolower((unsigned char)query[n]);
	while (n > 0 && (isspace((unsigned char)buf[n - 1]) || buf[n - 1] == ';'))
		n--;
	buf[n] = '\0';
}

void ar_pgservice_query(void *ctx, const char *query, struct pgw_out *out)
{
	const struct ar_server_core *sc = ctx;
	char q[128];

	pgservice_normalize(query, q, sizeof(q));
	if (strcmp(q, "select 1") == 0) {
		const char *names[] = { "?column?" };
		const char *values[] = { "1" };
		pgw_put_row_description(out, 1, names);
		pgw_put_data_row(out, 1, values);
		pgw_put_command_complete(out, "SELECT 1");
		return;
	}
	if (strcmp(q, "status") == 0 || strcmp(q, "show status") == 0) {
		char core[16], cores[16];
		snprintf(core, sizeof(core), "%u", sc->index);
		snprintf(cores, sizeof(cores), "%u", sc->server->config.core_count);
		const char *names[] = { "status", "version", "core", "cores" };
		const char *values[] = { "ok", AR_VERSION, core, cores };
		pgw_put_row_description(out, 4, names);
		pgw_put_data_row(out, 4, values);
		pgw_put_command_complete(out, "SHOW");
		return;
	}
	char message[160];
	snprintf(message, sizeof(message), "unsupported command: \"%.100s\"", query);
	pgw_put_error(out, "ERROR", "0A000", message,
		      "This page server answers SELECT 1 and STATUS on this port.");
}
