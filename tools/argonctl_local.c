/*
 * argonctl_local.c - argonctl -D DATADIR COMMAND: import a base backup and WAL
 * segment files into a timeline, export a data directory at an LSN, read one
 * page, branch, collect garbage, show what is stored.  Each command opens the
 * data directory, does its work, and leaves everything durable.
 *
 * Exit codes: 0 done, 1 usage, 3 failed (one line on stderr says why).
 */
#include "tools/argonctl_local.h"

#include "common/err.h"
#include "ingest/import.h"
#include "ingest/pgchecksum.h"
#include "ingest/redocheck.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 1
#define EXIT_FAILED 3
#define DEFAULT_ID "00000000000000000000000000000001"

struct cli {
	const char *dir;
	struct tl_id tenant;
	struct tl_id timeline;
	struct store_options so;
	ar_lsn lsn;
	bool have_lsn;
	bool latest;
	ar_lsn stop_lsn;
	ar_lsn flip_lsn;
	struct tl_id new_timeline;
	bool have_new;
	uint32_t queue_depth;
	uint32_t read_bytes;
	bool progress;
	const char *batch;
	int argc;
	char **argv; /* the command's operands */
};

void argonctl_local_usage(void)
{
	printf("\nOffline commands (argonctl -D DATADIR [OPTION]... COMMAND):\n"
	       "  import base PGDATA           a new timeline from a pg_basebackup (plain or tar\n"
	       "                               format) or a cleanly stopped data directory\n"
	       "  import wal WALDIR            WAL segment files from where the timeline is\n"
	       "  export --lsn LSN|latest DIR  a data directory as of LSN\n"
	       "  getpage --lsn LSN SPC DB REL FORK BLOCK FILE\n"
	       "                               one 8 KiB page as of LSN\n"
	       "  getpage --batch LIST         many: lines \"LSN SPC DB REL FORK BLOCK FILE\"\n"
	       "  branch --lsn LSN --new ID    a copy-on-write branch of the timeline at LSN\n"
	       "  gc --lsn LSN                 drop history below LSN (branch points kept)\n"
	       "  show                         LSNs, layers and ingest state, as JSON\n"
	       "  lsn-for-time \"YYYY-MM-DD HH:MM:SS[.ffffff]\"\n"
	       "                               end LSN of the newest commit at or before (UTC)\n"
	       "  redo-check WALDIR            replay each record of wal_consistency_checking\n"
	       "                               WAL on Argon's page before it, compare with its\n"
	       "                               post-image after PostgreSQL's masks\n"
	       "                               (--stop-lsn; --flip-main-data LSN: a negative\n"
	       "                               control)\n"
	       "  checksums on|off|show        whether exported and served pages carry\n"
	       "                               pd_checksum (from the base backup's pg_control)\n"
	       "Options: --tenant ID, --timeline ID (32 hex digits; default %s),\n"
	       "  --checkpoint-distance BYTES, --compaction-threshold N, --image-threshold N,\n"
	       "  --cache-bytes BYTES, --stop-lsn LSN, --queue-depth N, --read-size BYTES,\n"
	       "  --no-progress, --shard N/COUNT (one shard of a tenant of COUNT shards:\n"
	       "  tenants/<tenant>-<NN><CC>; each shard imports its share of the same WAL)\n",
	       DEFAULT_ID);
}

static int die(const char *what, const char *why)
{
	fprintf(stderr, "argonctl: %s: %s\n", what, why);
	return EXIT_FAILED;
}

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static int parse_id(const char *text, struct tl_id *out)
{
	if (!tl_id_from_hex(text, out)) {
		fprintf(stderr, "argonctl: \"%s\" is not an ID of 32 hex digits\n", text);
		return -1;
	}
	return 0;
}

static int parse_lsn_opt(const char *text, ar_lsn *out)
{
	if (!store_parse_lsn(text, out)) {
		fprintf(stderr, "argonctl: \"%s\" is not an LSN (like 0/16B3748)\n", text);
		return -1;
	}
	return 0;
}

enum {
	OPT_TENANT = 256,
	OPT_TIMELINE,
	OPT_CKPT,
	OPT_COMPACT,
	OPT_IMAGE,
	OPT_CACHE,
	OPT_STOP,
	OPT_QD,
	OPT_READ,
	OPT_NOPROG,
	OPT_NEW,
	OPT_LSN,
	OPT_BATCH,
	OPT_FLIP,
	OPT_SHARD
};

static int parse_number(int opt, const char *arg, struct cli *c)
{
	uint64_t v;
	if (!parse_u64(arg, &v)) {
		fprintf(stderr, "argonctl: \"%s\" is not a number\n", arg);
		return -1;
	}
	if (opt == OPT_CKPT)
		c->so.checkpoint_distance_bytes = v;
	else if (opt == OPT_COMPACT)
		c->so.compact.compaction_threshold = (uint32_t)v;
	else if (opt == OPT_IMAGE)
		c->so.compact.image_creation_threshold = (uint32_t)v;
	else if (opt == OPT_CACHE)
		c->so.cache_bytes = v;
	else if (opt == OPT_QD)
		c->queue_depth = (uint32_t)v;
	else
		c->read_bytes = (uint32_t)v;
	return 0;
}

static int parse_option(int opt, const char *arg, struct cli *c)
{
	switch (opt) {
	case OPT_TENANT:
		return parse_id(arg, &c->tenant);
	case OPT_TIMELINE:
		return parse_id(arg, &c->timeline);
	case OPT_NEW:
		c->have_new = true;
		return parse_id(arg, &c->new_timeline);
	case OPT_LSN:
		c->have_lsn = true;
		c->latest = strcmp(arg, "latest") == 0;
		return c->latest ? 0 : parse_lsn_opt(arg, &c->lsn);
	case OPT_STOP:
		return parse_lsn_opt(arg, &c->stop_lsn);
	case OPT_FLIP:
		return parse_lsn_opt(arg, &c->flip_lsn);
	case OPT_NOPROG:
		c->progress = false;
		return 0;
	case OPT_BATCH:
		c->batch = arg;
		return 0;
	case OPT_SHARD: {
		unsigned n, count;
		char end;
		if (sscanf(arg, "%u/%u%c", &n, &count, &end) != 2 || count < 2 ||
		    count > WI_SHARDS_MAX || n >= count)
			return -1;
		c->so.shard_number = n;
		c->so.shard_count = count;
		return 0;
	}
	case OPT_CKPT:
	case OPT_COMPACT:
	case OPT_IMAGE:
	case OPT_CACHE:
	case OPT_QD:
	case OPT_READ:
		return parse_number(opt, arg, c);
	default:
		return -1;
	}
}

static int parse_cli(int argc, char **argv, struct cli *c)
{
	static const struct option options[] = {
		{ "data-dir", required_argument, NULL, 'D' },
		{ "tenant", required_argument, NULL, OPT_TENANT },
		{ "timeline", required_argument, NULL, OPT_TIMELINE },
		{ "checkpoint-distance", required_argument, NULL, OPT_CKPT },
		{ "compaction-threshold", required_argument, NULL, OPT_COMPACT },
		{ "image-threshold", required_argument, NULL, OPT_IMAGE },
		{ "cache-bytes", required_argument, NULL, OPT_CACHE },
		{ "stop-lsn", required_argument, NULL, OPT_STOP },
		{ "queue-depth", required_argument, NULL, OPT_QD },
		{ "read-size", required_argument, NULL, OPT_READ },
		{ "no-progress", no_argument, NULL, OPT_NOPROG },
		{ "new", required_argument, NULL, OPT_NEW },
		{ "lsn", required_argument, NULL, OPT_LSN },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "flip-main-data", required_argument, NULL, OPT_FLIP },
		{ "shard", required_argument, NULL, OPT_SHARD },
		{ NULL, 0, NULL, 0 },
	};
	memset(c, 0, sizeof(*c));
	store_options_default(&c->so);
	c->queue_depth = 16;
	c->read_bytes = 1u << 20;
	c->progress = true;
	tl_id_from_hex(DEFAULT_ID, &c->tenant);
	tl_id_from_hex(DEFAULT_ID, &c->timeline);
	int opt;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "D:", options, NULL)) != -1) {
		if (opt == 'D')
			c->dir = optarg;
		else if (opt == '?' || parse_option(opt, optarg, c) < 0)
			return -1;
	}
	c->argc = argc - optind;
	c->argv = argv + optind;
	return c->dir && c->argc > 0 ? 0 : -1;
}

/* ---- the store, opened for one command ---- */

struct ctx {
	struct cli *c;
	struct ar_store *s;
	struct ar_timeline *tl;
	struct walingest *wi;
	struct ingest_state st;
	char err[STORE_ERROR_BYTES];
};

static void ctx_close(struct ctx *x)
{
	wi_destroy(x->wi);
	store_close(x->s);
}

static int ctx_open(struct ctx *x, bool create, bool need_state)
{
	int rc = store_open(x->c->dir, &x->c->tenant, create, &x->c->so, &x->s, x->err);
	if (rc < 0)
		return rc;
	x->tl = tenant_timeline(x->s->tenant, &x->c->timeline);
	if (!x->tl && !create) {
		char hex[33];
		tl_id_hex(&x->c->timeline, hex);
		snprintf(x->err, sizeof(x->err), "unknown timeline %s", hex);
		return -AR_ENOTIMELINE;
	}
	if (need_state)
		return store_state_read(x->s, &x->c->timeline, &x->st, x->err);
	return 0;
}

static int ctx_ingest(struct ctx *x)
{
	/* A shard takes its share of every record: the other shards are held elsewhere. */
	struct wi_target t = { .map = { .shard_count =
					    x->c->so.shard_count > 1 ? x->c->so.shard_count : 1,
					.stripe_blocks = AR_STRIPE_BLOCKS_DEFAULT } };
	t.shards[x->c->so.shard_number] = x->tl;
	int rc = wi_create(&t, &x->wi);
	if (rc < 0)
		snprintf(x->err, sizeof(x->err), "starting the ingest: %s", strerror(-rc));
	return rc;
}

static void print_tl_stats(FILE *f, struct ar_timeline *tl)
{
	const struct tl_stats *ts = tl_stats(tl);
	fprintf(f,
		"\"flushes\": %" PRIu64 ", \"layers_written\": %" PRIu64
		", \"compactions\": %" PRIu64 ", \"l1_written\": %" PRIu64
		", \"image_layers_written\": %" PRIu64 ", \"images_created\": %" PRIu64
		", \"gc_runs\": %" PRIu64 ", \"gc_layers_removed\": %" PRIu64,
		ts->flushes, ts->layers_written, ts->compactions, ts->l1_written,
		ts->image_layers_written, ts->images_created, ts->gc_runs, ts->gc_layers_removed);
}

/* ", \"redo\": {...}": the redo pool's counters and what its helper replayed,
 * by pg_waldump's record-type names. */
static void print_redo_stats(struct ctx *x)
{
	struct ar_redopool_stats rs = { 0 };
	static char text[64 * 1024];
	text[0] = '\0';
	if (x->s->redopool) {
		ar_redopool_stats(x->s->redopool, &rs);
		struct ar_redo *slot = ar_redopool_slot(x->s->redopool, 0);
		if (ar_redopool_replayed(slot, text, sizeof(text)) < 0)
			text[0] = '\0';
	}
	printf(", \"redo\": {\"helpers_started\": %" PRIu64 ", \"requests\": %" PRIu64
	       ", \"records\": %" PRIu64 ", \"failures\": %" PRIu64 ", \"replayed\": {",
	       rs.started, rs.requests, rs.records, rs.failures);
	const char *sep = "";
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *space = strrchr(line, ' ');
		if (!space)
			continue;
		*space = '\0';
		printf("%s\"%s\": %s", sep, line, space + 1);
		sep = ", ";
	}
	printf("}}");
}

/* Import from pgdata: a plain directory, or a tar-format backup unpacked first. */
static int import_base_from(struct ctx *x, const char *src, struct base_info *bi,
			    struct base_stats *bs)
{
	char unpacked[700];
	int rc = base_unpack(src, x->c->dir, unpacked, sizeof(unpacked), x->err);
	if (rc < 0)
		return rc;
	const char *pgdata = rc == 1 ? unpacked : src;
	bool scratch = rc == 1;
	rc = base_inspect(pgdata, bi, x->err);
	if (rc == 0)
		rc = tenant_timeline_create(x->s->tenant, &x->c->timeline, bi->start_lsn, &x->tl);
	if (rc < 0 && !x->err[0])
		snprintf(x->err, sizeof(x->err), "creating the timeline: %s", strerror(-rc));
	if (rc == 0)
		rc = ctx_ingest(x);
	if (rc == 0)
		rc = base_import(x->wi, pgdata, bi, bs, x->err);
	if (scratch)
		base_unpack_remove(unpacked);
	return rc;
}

static int cmd_import_base(struct ctx *x)
{
	struct base_info bi;
	struct base_stats bs;
	if (x->c->argc != 3)
		return -EINVAL;
	int rc = ctx_open(x, true, false);
	if (rc == 0 && x->tl) {
		snprintf(x->err, sizeof(x->err), "the timeline exists already");
		rc = -EEXIST;
	}
	if (rc == 0)
		rc = import_base_from(x, x->c->argv[2], &bi, &bs);
	if (rc == 0)
		rc = store_checkpoint(x->s, x->tl, x->err);
	x->st = (struct ingest_state){ .system_id = bi.system_id,
				       .seg_bytes = bi.seg_bytes,
				       .pg_timeline = bi.pg_timeline,
				       .base_start_lsn = bi.start_lsn,
				       .consistent_lsn = bi.end_lsn,
				       .next_lsn = bi.start_lsn,
				       .data_checksums = bi.data_checksums };
	if (rc == 0)
		rc = store_state_write(x->s, &x->c->timeline, &x->st, x->err);
	if (rc < 0)
		return rc;
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	store_lsn_text(bi.start_lsn, a);
	store_lsn_text(bi.end_lsn, b);
	printf("{\"start_lsn\": \"%s\", \"end_lsn\": \"%s\", \"system_id\": \"%" PRIu64
	       "\", \"relation_files\": %" PRIu64 ", \"blocks\": %" PRIu64
	       ", \"zero_blocks\": %" PRIu64 ", \"slru_pages\": %" PRIu64 ", \"files\": %" PRIu64
	       ", \"skipped\": %" PRIu64 "}\n",
	       a, b, bi.system_id, bs.relation_files, bs.blocks, bs.zero_blocks, bs.slru_pages,
	       bs.files, bs.skipped);
	return 0;
}

/* After WAL: a base backup without a manifest becomes consistent at the
 * BACKUP_END record naming its start. */
static void note_consistency(struct ctx *x)
{
	const struct wi_stats *ws = wi_stats(x->wi);
	if (x->st.consistent_lsn == 0 && ws->backup_end_lsn &&
	    ws->backup_end_start == x->st.base_start_lsn)
		x->st.consistent_lsn = ws->backup_end_lsn;
}

static void print_import(struct ctx *x, const struct wal_import_result *r)
{
	const struct wi_stats *ws = wi_stats(x->wi);
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES], c[STORE_LSN_TEXT_BYTES];
	store_lsn_text(r->last_end_lsn, a);
	store_lsn_text(r->next_lsn, b);
	store_lsn_text(x->st.consistent_lsn, c);
	double mib = (double)r->bytes_read / (1 << 20);
	printf("{\"records\": %" PRIu64 ", \"skipped\": %" PRIu64 ", \"wal_bytes\": %" PRIu64
	       ", \"bytes_read\": %" PRIu64 ", \"segments\": %" PRIu64
	       ", \"seconds\": %.3f, \"mib_per_s\": %.1f, \"last_lsn\": \"%s\", \"next_lsn\": "
	       "\"%s\", \"consistent_lsn\": \"%s\", \"images\": %" PRIu64
	       ", \"wal_values\": %" PRIu64 ", \"argon_values\": %" PRIu64
	       ", \"rels_created\": %" PRIu64 ", \"rels_dropped\": %" PRIu64
	       ", \"dbs_created\": %" PRIu64 ", \"dbs_dropped\": %" PRIu64 ", \"xacts\": %" PRIu64
	       ", \"multixacts\": %" PRIu64 ", \"relmaps\": %" PRIu64 ", \"checkpoints\": %" PRIu64
	       ", \"vm_clears\": %" PRIu64 ", ",
	       ws->records, ws->skipped, ws->bytes, r->bytes_read, r->segments, r->seconds,
	       r->seconds > 0 ? mib / r->seconds : 0.0, a, b, c, ws->images, ws->wal_values,
	       ws->argon_values, ws->rels_created, ws->rels_dropped, ws->dbs_created,
	       ws->dbs_dropped, ws->xacts, ws->multixacts, ws->relmaps, ws->checkpoints,
	       ws->vm_clears);
	print_tl_stats(stdout, x->tl);
	print_redo_stats(x);
	printf("}\n");
}

static int cmd_import_wal(struct ctx *x)
{
	if (x->c->argc != 3)
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	if (rc == 0)
		rc = ctx_ingest(x);
	if (rc < 0)
		return rc;
	struct wal_import_options o = { .chunk_bytes = x->c->read_bytes,
					.queue_depth = x->c->queue_depth,
					.stop_lsn = x->c->stop_lsn,
					.progress = x->c->progress };
	struct wal_import_result r;
	char cerr[STORE_ERROR_BYTES];
	rc = wal_import(x->s, x->tl, x->wi, x->c->argv[2], &x->st, &o, &r, x->err);
	/* A record refused part-way left part of itself in the open layer: keep only
	 * what earlier flushes made durable.  After bad WAL, keep every good record.
	 * Either way the next import resumes from the old position and skips what is
	 * stored. */
	if (rc < 0 && r.ingest_failed)
		return rc;
	int crc = store_checkpoint(x->s, x->tl, cerr);
	if (crc < 0) {
		snprintf(x->err, sizeof(x->err), "%s", cerr);
		return crc;
	}
	if (rc < 0)
		return rc;
	x->st.next_lsn = r.next_lsn;
	note_consistency(x);
	rc = store_state_write(x->s, &x->c->timeline, &x->st, x->err);
	if (rc == 0)
		print_import(x, &r);
	return rc;
}

/* The LSN a read asks for: refused below the base backup's end. */
static int read_lsn(struct ctx *x, ar_lsn *lsn)
{
	*lsn = x->c->latest ? tl_last_record_lsn(x->tl) : x->c->lsn;
	if (!x->c->have_lsn) {
		snprintf(x->err, sizeof(x->err), "--lsn is required");
		return -EINVAL;
	}
	return store_check_read_lsn(x->tl, &x->st, *lsn, x->err);
}

static int cmd_export(struct ctx *x)
{
	ar_lsn lsn;
	if (x->c->argc != 2)
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	if (rc == 0)
		rc = read_lsn(x, &lsn);
	struct export_stats es;
	if (rc == 0)
		rc = export_datadir(x->tl, lsn, x->st.data_checksums, x->c->argv[1], &es, x->err);
	if (rc < 0)
		return rc;
	char a[STORE_LSN_TEXT_BYTES];
	store_lsn_text(lsn, a);
	printf("{\"lsn\": \"%s\", \"relation_forks\": %" PRIu64 ", \"blocks\": %" PRIu64
	       ", \"slru_pages\": %" PRIu64 ", \"files\": %" PRIu64 ", ",
	       a, es.relation_forks, es.blocks, es.slru_pages, es.files);
	print_tl_stats(stdout, x->tl);
	print_redo_stats(x);
	printf("}\n");
	return 0;
}

/* One page at lsn into a file: f = spc, db, rel, fork, block. */
static int getpage_one(struct ctx *x, ar_lsn lsn, const uint64_t f[5], const char *out)
{
	struct ar_rel rel = { (uint32_t)f[0], (uint32_t)f[1], (uint32_t)f[2], (uint8_t)f[3] };
	uint8_t page[AR_PAGE_BYTES];
	int rc = store_read_page(x->tl, &x->st, rel, (uint32_t)f[4], lsn, page, x->err);
	if (rc < 0)
		return rc;
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, page, AR_PAGE_BYTES) != AR_PAGE_BYTES) {
		snprintf(x->err, sizeof(x->err), "%s: %s", out, strerror(errno));
		rc = -EIO;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static bool parse_fields(char **words, uint64_t f[5])
{
	for (int i = 0; i < 5; i++)
		if (!parse_u64(words[i], &f[i]) || f[i] > UINT32_MAX)
			return false;
	return f[3] <= AR_FORK_INIT;
}

/* Lines "LSN SPC DB REL FORK BLOCK FILE"; one line per request on stdout:
 * "ok FILE" or "error FILE: why". */
static int getpage_batch(struct ctx *x, const char *list)
{
	FILE *in = fopen(list, "re");
	if (!in) {
		snprintf(x->err, sizeof(x->err), "%s: %s", list, strerror(errno));
		return -errno;
	}
	char line[1200], w[7][400];
	int rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), in)) {
		char *words[7] = { w[0], w[1], w[2], w[3], w[4], w[5], w[6] };
		uint64_t f[5];
		ar_lsn lsn;
		if (sscanf(line, "%399s %399s %399s %399s %399s %399s %399s", w[0], w[1], w[2],
			   w[3], w[4], w[5], w[6]) != 7 ||
		    !store_parse_lsn(w[0], &lsn) || !parse_fields(words + 1, f)) {
			snprintf(x->err, sizeof(x->err), "%s: malformed line: %s", list, line);
			rc = -EINVAL;
			break;
		}
		x->c->lsn = lsn;
		x->c->have_lsn = true;
		x->err[0] = '\0';
		int one = read_lsn(x, &lsn);
		if (one == 0)
			one = getpage_one(x, lsn, f, w[6]);
		printf(one == 0 ? "ok %s\n" : "error %s: %s\n", w[6], x->err);
	}
	x->err[0] = '\0';
	fclose(in);
	return rc;
}

static int cmd_getpage(struct ctx *x)
{
	uint64_t f[5];
	ar_lsn lsn;
	bool batch = x->c->batch && x->c->argc == 1;
	if (!batch && (x->c->argc != 7 || !parse_fields(x->c->argv + 1, f)))
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	if (rc == 0 && batch)
		return getpage_batch(x, x->c->batch);
	if (rc == 0)
		rc = read_lsn(x, &lsn);
	if (rc == 0)
		rc = getpage_one(x, lsn, f, x->c->argv[6]);
	if (rc < 0)
		return rc;
	char a[STORE_LSN_TEXT_BYTES];
	store_lsn_text(lsn, a);
	printf("{\"lsn\": \"%s\"", a);
	print_redo_stats(x);
	printf("}\n");
	return 0;
}

static int cmd_branch(struct ctx *x)
{
	if (x->c->argc != 1 || !x->c->have_new || !x->c->have_lsn || x->c->latest)
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	if (rc < 0)
		return rc;
	return store_branch(x->s, &x->c->timeline, &x->st, x->c->lsn, &x->c->new_timeline, x->err);
}

static int cmd_gc(struct ctx *x)
{
	uint32_t removed = 0;
	if (x->c->argc != 1 || !x->c->have_lsn || x->c->latest)
		return -EINVAL;
	int rc = ctx_open(x, false, false);
	if (rc == 0)
		rc = tenant_gc(x->s->tenant, &x->c->timeline, 0, x->c->lsn, &removed);
	if (rc < 0) {
		if (!x->err[0])
			snprintf(x->err, sizeof(x->err), "gc: %s", strerror(-rc));
		return rc;
	}
	char a[STORE_LSN_TEXT_BYTES];
	store_lsn_text(tl_gc_cutoff(x->tl), a);
	printf("{\"gc_cutoff\": \"%s\", \"layers_removed\": %u}\n", a, removed);
	return 0;
}

static void show_timeline(struct ctx *x, struct ar_timeline *tl, bool last)
{
	char id[33], anc[33] = "", a[24], b[24], c[24], d[24];
	tl_id_hex(tl_id(tl), id);
	if (tl_ancestor(tl))
		tl_id_hex(tl_id(tl_ancestor(tl)), anc);
	store_lsn_text(tl_start_lsn(tl), a);
	store_lsn_text(tl_last_record_lsn(tl), b);
	store_lsn_text(tl_disk_consistent_lsn(tl), c);
	store_lsn_text(tl_gc_cutoff(tl), d);
	uint32_t l0 = 0, l1 = 0, images = 0;
	for (uint32_t i = 0; i < tl_layer_count(tl); i++) {
		const struct manifest_layer *ml = tl_layer(tl, i);
		if (ml->info.kind == LYR_IMAGE)
			images++;
		else if (ml->level == 0)
			l0++;
		else
			l1++;
	}
	printf("  {\"id\": \"%s\", \"ancestor\": \"%s\", \"start_lsn\": \"%s\", "
	       "\"last_record_lsn\": \"%s\", \"disk_consistent_lsn\": \"%s\", \"gc_cutoff\": "
	       "\"%s\", \"l0_layers\": %u, \"l1_layers\": %u, \"image_layers\": %u",
	       id, anc, a, b, c, d, l0, l1, images);
	struct ingest_state st;
	if (store_state_read(x->s, tl_id(tl), &st, x->err) == 0) {
		store_lsn_text(st.consistent_lsn, a);
		store_lsn_text(st.next_lsn, b);
		store_lsn_text(st.base_start_lsn, c);
		printf(", \"system_id\": \"%" PRIu64 "\", \"base_start_lsn\": \"%s\", "
		       "\"consistent_lsn\": \"%s\", \"next_lsn\": \"%s\"",
		       st.system_id, c, a, b);
	}
	printf("}%s\n", last ? "" : ",");
}

/* "YYYY-MM-DD HH:MM:SS[.ffffff]" (UTC) as PostgreSQL time: microseconds since 2000-01-01. */
static bool parse_pg_time(const char *text, int64_t *out)
{
	struct tm tm = { 0 };
	int used = 0;
	unsigned frac = 0;
	int fdigits = 0;
	if (sscanf(text, "%d-%d-%d %d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &used) != 6)
		return false;
	const char *p = text + used;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9' && fdigits < 6; p++, fdigits++)
			frac = frac * 10 + (unsigned)(*p - '0');
	for (; fdigits < 6; fdigits++)
		frac *= 10;
	if (*p != '\0' && strcmp(p, " UTC") != 0 && strcmp(p, "+00") != 0)
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	*out = ((int64_t)t - 946684800) * 1000000 + frac; /* PostgreSQL's epoch is 2000 */
	return true;
}

static int cmd_lsn_for_time(struct ctx *x)
{
	int64_t ts;
	ar_lsn lsn;
	if (x->c->argc != 2 || !parse_pg_time(x->c->argv[1], &ts))
		return -EINVAL;
	int rc = ctx_open(x, false, false);
	if (rc == 0)
		rc = wi_lsn_for_time(x->tl, ts, tl_last_record_lsn(x->tl), &lsn);
	if (rc == -AR_ENOKEY)
		snprintf(x->err, sizeof(x->err), "no commit at or before %s is known",
			 x->c->argv[1]);
	if (rc < 0)
		return rc;
	char a[STORE_LSN_TEXT_BYTES];
	store_lsn_text(lsn, a);
	printf("{\"lsn\": \"%s\"}\n", a);
	return 0;
}

/* checksums on|off|show: whether pages handed out carry pd_checksum. */
static int cmd_checksums(struct ctx *x)
{
	const char *what = x->c->argc == 2 ? x->c->argv[1] : "";
	bool show = strcmp(what, "show") == 0, on = strcmp(what, "on") == 0;
	if (!show && !on && strcmp(what, "off") != 0)
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	if (rc == 0 && !show) {
		x->st.data_checksums = on;
		rc = store_state_write(x->s, &x->c->timeline, &x->st, x->err);
	}
	if (rc == 0)
		printf("{\"data_checksums\": %s}\n", x->st.data_checksums ? "true" : "false");
	return rc;
}

static int cmd_redo_check(struct ctx *x)
{
	if (x->c->argc != 2)
		return -EINVAL;
	int rc = ctx_open(x, false, true);
	struct redo_check_options o = { .wal_dir = x->c->argv[1],
					.stop_lsn = x->c->stop_lsn,
					.flip_lsn = x->c->flip_lsn,
					.progress = x->c->progress };
	struct redo_check_result r;
	if (rc == 0)
		rc = redo_check(x->s, x->tl, &x->st, &o, &r, x->err);
	if (rc < 0)
		return rc;
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	store_lsn_text(r.first_lsn, a);
	store_lsn_text(r.last_lsn, b);
	printf("{\"records\": %" PRIu64 ", \"blocks_checked\": %" PRIu64
	       ", \"mismatches\": %" PRIu64 ", \"lsn_mismatches\": %" PRIu64
	       ", \"redo_errors\": %" PRIu64 ", \"from_store\": %" PRIu64 ", \"kept\": %" PRIu64
	       ", \"keep_disagreements\": %" PRIu64 ", \"flipped\": %" PRIu64
	       ", \"first_lsn\": \"%s\", \"last_lsn\": \"%s\"",
	       r.records, r.blocks_checked, r.mismatches, r.lsn_mismatches, r.redo_errors,
	       r.from_store, r.kept, r.keep_disagreements, r.flipped, a, b);
	print_redo_stats(x);
	printf("}\n");
	return 0;
}

static int cmd_show(struct ctx *x)
{
	int rc = store_open(x->c->dir, &x->c->tenant, false, &x->c->so, &x->s, x->err);
	if (rc < 0)
		return rc;
	uint32_t n = tenant_timeline_count(x->s->tenant);
	printf("{\"timelines\": [\n");
	for (uint32_t i = 0; i < n; i++)
		show_timeline(x, tenant_timeline_at(x->s->tenant, i), i + 1 == n);
	printf("]}\n");
	return 0;
}

int argonctl_local(int argc, char **argv)
{
	struct cli c;
	struct ctx x = { .c = &c };
	if (parse_cli(argc, argv, &c) < 0) {
		fprintf(stderr, "argonctl: usage: argonctl -D DATADIR [OPTION]... COMMAND "
				"(argonctl --help lists them)\n");
		return EXIT_USAGE;
	}
	const char *cmd = c.argv[0], *sub = c.argc > 1 ? c.argv[1] : "";
	int rc;
	if (strcmp(cmd, "import") == 0 && strcmp(sub, "base") == 0)
		rc = cmd_import_base(&x);
	else if (strcmp(cmd, "import") == 0 && strcmp(sub, "wal") == 0)
		rc = cmd_import_wal(&x);
	else if (strcmp(cmd, "export") == 0)
		rc = cmd_export(&x);
	else if (strcmp(cmd, "getpage") == 0)
		rc = cmd_getpage(&x);
	else if (strcmp(cmd, "branch") == 0)
		rc = cmd_branch(&x);
	else if (strcmp(cmd, "gc") == 0)
		rc = cmd_gc(&x);
	else if (strcmp(cmd, "show") == 0)
		rc = cmd_show(&x);
	else if (strcmp(cmd, "lsn-for-time") == 0)
		rc = cmd_lsn_for_time(&x);
	else if (strcmp(cmd, "checksums") == 0)
		rc = cmd_checksums(&x);
	else if (strcmp(cmd, "redo-check") == 0)
		rc = cmd_redo_check(&x);
	else
		rc = -EINVAL;
	ctx_close(&x);
	if (rc == -EINVAL && !x.err[0]) {
		fprintf(stderr,
			"argonctl: unknown command or wrong operands: %s %s "
			"(argonctl --help lists them)\n",
			cmd, sub);
		return EXIT_USAGE;
	}
	return rc < 0 ? die(cmd, x.err[0] ? x.err : strerror(-rc)) : 0;
}
