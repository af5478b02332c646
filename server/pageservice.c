/*
 * pageservice.c - Neon's page service on the cores: `pagestream_v2|v3 <tenant>
 * <timeline>` switches a connection to CopyBoth; then every CopyData is a request
 * (common/pagestream.h) answered in order with Neon's responses.
 *
 * Where a request runs.  A tenant shard is owned by one core (its store: layer
 * files, block cache, redo helper; and that core's page cache partition):
 * shard s of tenant T lives on core (hash(T) + s) % cores and is opened there on
 * its first request.  A request is executed on the owning core: inline when the
 * connection lives there, else sent over the cores' SPSC rings and its answer sent
 * back; the connection's core writes every answer to the socket in request order.
 * A tenant has one shard (tenants/<tenant>) or CC (tenants/<tenant>-<NN><CC>,
 * store.h).  GetPage goes to the shard owning its key (Neon's hash, engine/key.h),
 * every other request to shard 0.  A connection naming `<tenant>-<NNCC>` is that
 * shard's: its GetPages must be for that shard's keys.  A stream whose requests all
 * go to one shard (shard-named, or any of an unsharded tenant) is handed once to that
 * shard's core right after the command (pglisten's hand-off), which then answers
 * everything on the thread that reads the socket.  A live tenant's requests
 * run on its ingest thread (live_submit), which owns its store.
 *
 * Entry states (the per-connection window of PS_WINDOW requests, a ring):
 *
 *   QUEUED --owner is this core--> run inline (ps_exec)  --> DONE
 *   QUEUED --owner elsewhere-----> ps_msg_exec there     --> ps_msg_done here -> DONE
 *   run: LSN not yet ingested --> waits on the owner (timer) --> DONE or timeout
 *   DONE at the head --> encoded into the send buffer by ps_drain, slot freed
 *
 * LSN rules (Neon's effective_request_lsn, reference/neon-storage.md section 1):
 * request_lsn 0 or below not_modified_since: BadRequest; below the GC cutoff:
 * refused; not_modified_since past the last ingested LSN: wait up to
 * wait_lsn_timeout_ms, then "LSN timeout"; else read at min(last, request_lsn).
 * Each of these is an Error response; the connection stays open.  A malformed
 * request (unknown tag, wrong length) ends the connection with a FATAL error, as
 * Neon drops it.
 *
 * Invariants:
 *  1. An entry is touched by one core at a time: the connection's until it is
 *     sent, the owner's until its answer is sent back (the ring orders both).
 *  2. A connection is freed only when none of its entries is out (busy == 0).
 *  3. The page cache answers only under its validity rule (cache/pagecache.h).
 */
#include "server/server.h"

#include "cache/layercache.h"
#include "cache/pagecache.h"
#include "common/arena.h"
#include "common/assert.h"
#include "common/bytes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/pagestream.h"
#include "ingest/store.h"
#include "ingest/walingest.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PS_WINDOW 32
#define PS_HOSTED_MAX 64
#define PS_TIMELINES_MAX 32
#define PS_OUTBOX_MIN 256
#define PS_WAIT_POLL_MS 5

enum ps_entry_state { PS_FREE, PS_QUEUED, PS_DONE };

struct ps_conn;

struct ps_entry {
	struct live_job job; /* a live tenant's: run on its ingest thread */
	struct ps_conn *conn;
	uint32_t shard; /* the shard that answers it */
	struct ps_entry *next_wait;
	struct ps_request req;
	uint64_t deadline_ns;
	enum ps_entry_state state; /* written by the connection's core only */
	bool waits;                /* the executor's: waiting for WAL */
	bool deferred;             /* a page cache miss left for the batch's engine read */
	struct ps_tl *read_tl;     /* when deferred: where and at which LSN */
	ar_lsn read_lsn;
	struct ps_response resp;
	uint8_t *slru; /* malloc'd by the owner, freed when sent */
	char error[PS_ERROR_TEXT_MAX + 1];
	uint8_t page[PS_PAGE_BYTES];
};

struct ps_conn {
	struct ps_core *home;
	struct ar_pgconn *pgconn;
	enum ps_version version;
	struct tl_id tenant;
	struct tl_id timeline;
	struct ar_shard_map map; /* the tenant's shards (count 1: unsharded) */
	int32_t named_shard;     /* the shard the command named; -1: the tenant only */
	struct live_tl *live;    /* a live tenant: its ingest thread owns the store */
	uint32_t head;
	uint32_t count;
	uint32_t busy;      /* entries queued or running: not DONE */
	struct ps_entry *e; /* PS_WINDOW entries: the stream's memory (pglisten) */
	_Atomic bool gone;  /* the client left: entries waiting for WAL stop waiting */
};

struct ps_tl {
	struct tl_id id;
	struct ar_timeline *tl;
	struct ingest_state st;
	uint32_t space; /* page cache space */
};

struct ps_hosted {
	struct tl_id tenant;
	uint32_t shard;
	struct ar_store *store;
	struct ar_blockcache *blocks; /* its view on the core's layer cache */
	struct ps_tl tls[PS_TIMELINES_MAX];
	uint32_t tl_count;
};

struct ps_outmsg {
	uint32_t to;
	struct ar_msg msg;
};

struct ps_core {
	struct ar_server *server;
	struct ar_core *core;
	uint32_t index;
	struct ar_pagecache *cache;   /* NULL: page_cache_bytes = 0 */
	struct ar_layercache *layers; /* layer-file blocks of every store hosted here */
	struct ps_hosted *hosted[PS_HOSTED_MAX];
	uint32_t hosted_count;
	uint32_t next_space;
	struct ps_entry *waiting;
	bool wait_timer;
	struct ps_outmsg *outbox; /* messages a full ring refused, retried by timer */
	uint32_t outbox_count;
	uint32_t outbox_cap; /* grows: requests out plus answers owed to other cores */
	bool outbox_timer;
	bool executing_inline; /* ps_exec from ps_data: the answer needs no wake-up */
	/* GetPages of this core's shards read from one stream's input in this pass,
	 * run together at its drain (one batched engine read for their misses). */
	struct ps_entry *batch[PS_WINDOW];
	uint32_t batch_count;
	bool defer_misses; /* running a batch: GetPages that miss the cache are deferred */
	struct ps_entry *deferred[PS_WINDOW];
	uint32_t deferred_count;
	struct ar_pageservice_stats *stats; /* the server's, for /v1/status */
	struct ar_pgservice_ops ops;
};

/* Who holds each tenant's files, server-wide: a core of the page service (read
 * only) or a live timeline's ingest thread, never both. */
#define CLAIMS_MAX (AR_CORES_MAX * PS_HOSTED_MAX + AR_LIVE_TENANTS_MAX)
static pthread_mutex_t claims_mu = PTHREAD_MUTEX_INITIALIZER;
struct claim {
	struct tl_id tenant;
	bool live;
};
static struct claim claims[CLAIMS_MAX];
static uint32_t claim_count;

static void ps_exec(struct ps_core *pc, struct ps_entry *e);
static void ps_finish(struct ps_core *pc, struct ps_entry *e);
static void ps_batch_run(struct ps_core *pc, struct ps_conn *c);

static struct ps_core *core_ps(struct ar_server *s, uint32_t index)
{
	return s->cores[index].ps;
}

static uint32_t tenant_hash(const struct tl_id *t)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < sizeof(t->bytes); i++)
		h = (h ^ t->bytes[i]) * 16777619u;
	return h;
}

void ar_pageservice_unclaim(const struct tl_id *tenant)
{
	pthread_mutex_lock(&claims_mu);
	for (uint32_t i = 0; i < claim_count; i++)
		if (memcmp(&claims[i].tenant, tenant, sizeof(*tenant)) == 0) {
			claims[i] = claims[--claim_count];
			break;
		}
	pthread_mutex_unlock(&claims_mu);
}

int ar_pageservice_claim(const struct tl_id *tenant, bool live)
{
	int rc = 0;
	pthread_mutex_lock(&claims_mu);
	uint32_t i = 0;
	while (i < claim_count && memcmp(&claims[i].tenant, tenant, sizeof(*tenant)) != 0)
		i++;
	if (i < claim_count)
		rc = claims[i].live == live ? 0 : -EBUSY;
	else if (claim_count == CLAIMS_MAX)
		rc = -AR_ELIMIT;
	else
		claims[claim_count++] = (struct claim){ .tenant = *tenant, .live = live };
	pthread_mutex_unlock(&claims_mu);
	return rc;
}

/* ---- the outbox: cross-core messages a full ring refused ---- */

static void outbox_flush(struct ar_core *core, void *ctx);

static void ps_send(struct ps_core *pc, uint32_t to, const struct ar_msg *msg)
{
	if (pc->outbox_count == 0 && ar_core_send(pc->core, to, msg) == 0)
		return;
	/* Bounded by the requests in flight (every stream's window, on every core), but
	 * that bound is large: the outbox grows, on this rare path only, and a failed
	 * growth waits in place (the ring drains by itself). */
	while (pc->outbox_count == pc->outbox_cap) {
		uint32_t cap = pc->outbox_cap ? pc->outbox_cap * 2 : PS_OUTBOX_MIN;
		struct ps_outmsg *n = realloc(pc->outbox, cap * sizeof(*n));
		if (n) {
			pc->outbox = n;
			pc->outbox_cap = cap;
		} else if (ar_core_send(pc->core, to, msg) == 0) {
			return;
		}
	}
	pc->outbox[pc->outbox_count++] = (struct ps_outmsg){ .to = to, .msg = *msg };
	if (!pc->outbox_timer && ar_core_timer_add(pc->core, 1, outbox_flush, pc) == 0)
		pc->outbox_timer = true;
}

static void outbox_flush(struct ar_core *core, void *ctx)
{
	struct ps_core *pc = ctx;
	uint32_t sent = 0;
	(void)core;
	pc->outbox_timer = false;
	while (sent < pc->outbox_count &&
	       ar_core_send(pc->core, pc->outbox[sent].to, &pc->outbox[sent].msg) == 0)
		sent++;
	memmove(pc->outbox, pc->outbox + sent, (pc->outbox_count - sent) * sizeof(*pc->outbox));
	pc->outbox_count -= sent;
	if (pc->outbox_count > 0 && ar_core_timer_add(pc->core, 1, outbox_flush, pc) == 0)
		pc->outbox_timer = true;
}

/* ---- tenants on their owning core ---- */

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* How many shards the tenant has on disk: tenants/<hex> (1) or <hex>-<NN><CC>
 * (CC, with shard 0 present); 0: no such tenant. */
static uint32_t tenant_shards(const struct ar_server *s, const struct tl_id *t)
{
	char hex[33], path[AR_PATH_BYTES_MAX + 64];
	tl_id_hex(t, hex);
	snprintf(path, sizeof(path), "%s/tenants/%s", s->config.data_dir, hex);
	if (is_dir(path))
		return 1;
	for (uint32_t count = 2; count <= WI_SHARDS_MAX; count++) {
		snprintf(path, sizeof(path), "%s/tenants/%s-00%02x", s->config.data_dir, hex,
			 count);
		if (is_dir(path))
			return count;
	}
	return 0;
}

static bool timeline_dir_exists(const struct ar_server *s, const struct tl_id *t,
				const struct ar_shard_map *map, const struct tl_id *tl)
{
	char name[STORE_TENANT_DIR_BYTES], lh[33], path[AR_PATH_BYTES_MAX + 128];
	store_tenant_dir_name(t, 0, map->shard_count, name);
	tl_id_hex(tl, lh);
	snprintf(path, sizeof(path), "%s/tenants/%s/timelines/%s", s->config.data_dir, name, lh);
	return is_dir(path);
}

/* Shard s of a tenant lives on this core. */
static uint32_t shard_core(const struct ar_server *s, const struct tl_id *t, uint32_t shard)
{
	return (tenant_hash(t) + shard) % s->config.core_count;
}

/* The tenant's store on this core, opened on first use; NULL with error set. */
static struct ps_hosted *ps_host(struct ps_core *pc, const struct tl_id *tenant, uint32_t shard,
				 uint32_t shard_count, char *error)
{
	char hex[STORE_TENANT_DIR_BYTES], err[STORE_ERROR_BYTES];
	for (uint32_t i = 0; i < pc->hosted_count; i++)
		if (memcmp(&pc->hosted[i]->tenant, tenant, sizeof(*tenant)) == 0 &&
		    pc->hosted[i]->shard == shard)
			return pc->hosted[i];
	store_tenant_dir_name(tenant, shard, shard_count, hex);
	if (ar_pageservice_claim(tenant, false) == -EBUSY) {
		snprintf(error, PS_ERROR_TEXT_MAX,
			 "tenant %s streams WAL on its ingest thread; the page service does not "
			 "serve live timelines yet (use the management API's page reads)",
			 hex);
		return NULL;
	}
	if (pc->hosted_count == PS_HOSTED_MAX) {
		snprintf(error, PS_ERROR_TEXT_MAX, "core %u hosts %d tenants already", pc->index,
			 PS_HOSTED_MAX);
		return NULL;
	}
	struct ps_hosted *h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(error, PS_ERROR_TEXT_MAX, "out of memory opening tenant %s", hex);
		return NULL;
	}
	struct store_options o;
	store_options_default(&o);
	o.datadir_held = true;
	o.shard_number = shard;
	o.shard_count = shard_count;
	int rc = lc_view_create(pc->layers, pc->next_space++, &h->blocks);
	if (rc < 0)
		snprintf(err, sizeof(err), "its layer cache view: %s", strerror(-rc));
	o.cache = h->blocks;
	if (rc == 0)
		rc = store_open(pc->server->config.data_dir, tenant, false, &o, &h->store, err);
	if (rc < 0) {
		snprintf(error, PS_ERROR_TEXT_MAX, "opening tenant %s: %s", hex, err);
		ar_blockcache_destroy(h->blocks);
		free(h);
		return NULL;
	}
	h->tenant = *tenant;
	h->shard = shard;
	pc->hosted[pc->hosted_count++] = h;
	AR_LOG(LOG, "pageservice", "core %u serves tenant %s", pc->index, hex);
	return h;
}

static struct ps_tl *ps_timeline(struct ps_core *pc, struct ps_hosted *h, const struct tl_id *id,
				 char *error)
{
	char th[33], lh[33], err[STORE_ERROR_BYTES];
	for (uint32_t i = 0; i < h->tl_count; i++)
		if (memcmp(&h->tls[i].id, id, sizeof(*id)) == 0)
			return &h->tls[i];
	tl_id_hex(&h->tenant, th);
	tl_id_hex(id, lh);
	struct ar_timeline *tl = tenant_timeline(h->store->tenant, id);
	if (!tl) {
		snprintf(error, PS_ERROR_TEXT_MAX, "Timeline %s/%s was not found", th, lh);
		return NULL;
	}
	if (h->tl_count == PS_TIMELINES_MAX) {
		snprintf(error, PS_ERROR_TEXT_MAX, "tenant %s: %d timelines served already", th,
			 PS_TIMELINES_MAX);
		return NULL;
	}
	struct ps_tl *t = &h->tls[h->tl_count];
	if (store_state_read(h->store, id, &t->st, err) < 0) {
		snprintf(error, PS_ERROR_TEXT_MAX, "timeline %s/%s: %s", th, lh, err);
		return NULL;
	}
	t->id = *id;
	t->tl = tl;
	t->space = pc->next_space++;
	h->tl_count++;
	return t;
}

/* ---- executing one request on the owning core ---- */

static void fail(struct ps_entry *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct ps_entry *e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->error, sizeof(e->error), fmt, ap);
	va_end(ap);
	e->resp.tag = PS_R_ERROR;
	e->resp.error = e->error;
}

static struct ar_rel req_rel(const struct ps_request *r)
{
	return (struct ar_rel){ .spc_oid = r->rel.spc,
				.db_oid = r->rel.db,
				.rel_number = r->rel.relnode,
				.fork = r->rel.fork };
}

/* PostgreSQL creates the free space map and visibility map forks lazily, and
 * asks their size before they exist: Neon answers 0 blocks (and zero pages). */
static bool maybe_missing_fork(uint32_t fork)
{
	return fork == AR_FORK_FSM || fork == AR_FORK_VM;
}

/* One writer (the core): a relaxed load and store, no locked instruction. */
static void stat_add(_Atomic uint64_t *counter, uint64_t n)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/* The layer cache's counters for /v1/status (only this core reads the cache). */
static void publish_layer_stats(struct ps_core *pc)
{
	struct lc_stats st;
	lc_stats_read(pc->layers, &st);
	atomic_store_explicit(&pc->stats->layer_cache_hits, st.hits, memory_order_relaxed);
	atomic_store_explicit(&pc->stats->layer_cache_misses, st.misses, memory_order_relaxed);
	atomic_store_explicit(&pc->stats->layer_cache_bytes, st.bytes, memory_order_relaxed);
}

/* Read e's page from the engine (the page cache missed) and cache it. */
static void getpage_read(struct ar_pagecache *cache, struct ps_tl *t, struct ps_entry *e,
			 ar_lsn lsn)
{
	char err[STORE_ERROR_BYTES];
	struct ar_rel rel = req_rel(&e->req);
	ar_lsn since = lsn;
	int rc = store_read_page_since(t->tl, &t->st, rel, e->req.blkno, lsn, e->page, &since, err);
	/* ps_run checked lsn's range, so -ERANGE is a block at or beyond the end of a
	 * relation whose size was just read; -AR_ENOKEY a relation that does not exist. */
	if (rc == -ERANGE || (rc == -AR_ENOKEY && maybe_missing_fork(rel.fork))) {
		/* At or beyond the relation's end, or a free space map or visibility map
		 * never created: a zero page, as Neon answers. */
		memset(e->page, 0, PS_PAGE_BYTES);
		return;
	}
	if (rc < 0) {
		fail(e, "%s", err);
		return;
	}
	if (cache) {
		struct pc_key ck = { .space = t->space };
		struct ar_key key = ar_key_rel_block(rel, e->req.blkno);
		ar_key_encode(&key, ck.key);
		pc_insert(cache, &ck, since, lsn, e->page);
	}
}

/* defer: a miss is left for the batch's engine read (e->deferred). */
static void exec_getpage(struct ar_pagecache *cache, struct ar_pageservice_stats *stats,
			 struct ps_tl *t, struct ps_entry *e, ar_lsn lsn, bool defer)
{
	struct ar_key key = ar_key_rel_block(req_rel(&e->req), e->req.blkno);
	struct pc_key ck = { .space = t->space };
	ar_key_encode(&key, ck.key);
	e->resp.tag = PS_R_GETPAGE;
	e->resp.page = e->page;
	if (stats)
		stat_add(&stats->getpages, 1);
	if (cache && pc_lookup(cache, &ck, lsn, e->page)) {
		if (stats)
			stat_add(&stats->page_cache_hits, 1);
		return;
	}
	if (defer) {
		e->deferred = true;
		e->read_tl = t;
		e->read_lsn = lsn;
		return;
	}
	getpage_read(cache, t, e, lsn);
}

static void exec_slru(struct ps_tl *t, struct ps_entry *e, ar_lsn lsn)
{
	char err[STORE_ERROR_BYTES];
	uint8_t *pages = malloc((size_t)PS_SLRU_PAGES_MAX * PS_PAGE_BYTES);
	if (!pages) {
		fail(e, "out of memory reading an SLRU segment");
		return;
	}
	uint32_t n = 0;
	for (; n < PS_SLRU_PAGES_MAX; n++) {
		int rc =
		    store_read_slru(t->tl, &t->st, (enum ar_slru)e->req.slru_kind, e->req.segno, n,
				    lsn, pages + (size_t)n * PS_PAGE_BYTES, err);
		if (rc == -AR_ENOKEY)
			break;
		if (rc < 0) {
			free(pages);
			fail(e, "%s", err);
			return;
		}
	}
	if (n == 0) {
		free(pages);
		fail(e, "SLRU %u segment %04X not found", e->req.slru_kind, e->req.segno);
		return;
	}
	e->slru = pages;
	e->resp.tag = PS_R_GETSLRU;
	e->resp.slru_pages = n;
	e->resp.page = pages;
}

/* The LSN to read at, or false: the entry failed or waits. */
static bool effective_lsn(struct ps_tl *t, struct ps_entry *e, uint64_t wait_ms, ar_lsn *out)
{
	/* LSN texts are made only for an error: this runs for every request. */
	char a[STORE_LSN_TEXT_BYTES], b[STORE_LSN_TEXT_BYTES];
	const struct ps_request *r = &e->req;
	ar_lsn last = tl_last_record_lsn(t->tl), cutoff = tl_gc_cutoff(t->tl);
	if (r->request_lsn == 0) {
		fail(e, "invalid request: request LSN must not be 0");
		return false;
	}
	if (r->request_lsn < r->not_modified_since) {
		store_lsn_text(r->request_lsn, a);
		store_lsn_text(r->not_modified_since, b);
		fail(e, "invalid request: request LSN %s is less than not_modified_since %s", a, b);
		return false;
	}
	if (r->request_lsn < cutoff) {
		store_lsn_text(r->request_lsn, a);
		store_lsn_text(cutoff, b);
		fail(e,
		     "tried to request a page version that was garbage collected. requested at "
		     "%s gc cutoff %s",
		     a, b);
		return false;
	}
	if (r->not_modified_since > last) {
		uint64_t now = ar_core_now_ns();
		if (e->deadline_ns == 0)
			e->deadline_ns = now + wait_ms * 1000000ull;
		if (now < e->deadline_ns && !atomic_load(&e->conn->gone)) {
			e->waits = true;
			return false;
		}
		store_lsn_text(r->not_modified_since, a);
		store_lsn_text(last, b);
		fail(e,
		     "LSN timeout: timed out while waiting for WAL record at LSN %s to arrive, "
		     "last_record_lsn %s",
		     a, b);
		return false;
	}
	*out = r->request_lsn < last ? r->request_lsn : last; /* >= not_modified_since */
	return true;
}

static void wait_poll(struct ar_core *core, void *ctx);

static void wait_arm(struct ps_core *pc)
{
	if (!pc->wait_timer && ar_core_timer_add(pc->core, PS_WAIT_POLL_MS, wait_poll, pc) == 0)
		pc->wait_timer = true;
}

/* Requests waiting for WAL: run again (they finish or keep waiting). */
static void wait_poll(struct ar_core *core, void *ctx)
{
	struct ps_core *pc = ctx;
	(void)core;
	pc->wait_timer = false;
	struct ps_entry *list = pc->waiting;
	pc->waiting = NULL;
	while (list) {
		struct ps_entry *e = list;
		list = e->next_wait;
		e->next_wait = NULL;
		ps_exec(pc, e);
	}
}

/* Answer e from timeline t at the LSN Neon's rules pick (cache: this core's
 * partition, or NULL); false when it waits for WAL (e->waits). */
static bool ps_run(struct ps_tl *t, struct ps_entry *e, struct ar_pagecache *cache,
		   struct ar_pageservice_stats *stats, uint64_t wait_ms, bool defer)
{
	char err[STORE_ERROR_BYTES];
	ar_lsn lsn = 0;
	int rc;

	e->waits = false;
	e->deferred = false;
	memset(&e->resp, 0, sizeof(e->resp));
	if (!effective_lsn(t, e, wait_ms, &lsn))
		return !e->waits;
	if (store_check_read_lsn(t->tl, &t->st, lsn, err) < 0) {
		fail(e, "%s", err);
		return true;
	}
	switch (e->req.tag) {
	case PS_EXISTS:
		rc = tl_rel_exists(t->tl, req_rel(&e->req), lsn);
		e->resp.tag = PS_R_EXISTS;
		e->resp.exists = rc == 0;
		if (rc < 0 && rc != -AR_ENOKEY)
			fail(e, "relation size: %s", ar_strerror(rc));
		break;
	case PS_NBLOCKS:
		rc = tl_rel_nblocks(t->tl, req_rel(&e->req), lsn, &e->resp.nblocks);
		e->resp.tag = PS_R_NBLOCKS;
		if (rc == -AR_ENOKEY && maybe_missing_fork(e->req.rel.fork))
			e->resp.nblocks = 0;
		else if (rc == -AR_ENOKEY)
			fail(e, "relation %u/%u/%u fork %u does not exist", e->req.rel.spc,
			     e->req.rel.db, e->req.rel.relnode, e->req.rel.fork);
		else if (rc < 0)
			fail(e, "relation size: %s", ar_strerror(rc));
		break;
	case PS_GETPAGE:
		exec_getpage(cache, stats, t, e, lsn, defer);
		break;
	case PS_DBSIZE: {
		uint64_t bytes = 0;
		rc = tl_db_size(t->tl, 1663, e->req.dbnode, lsn, &bytes);
		e->resp.tag = PS_R_DBSIZE;
		e->resp.db_size = (int64_t)bytes;
		if (rc < 0)
			fail(e, "database %u size: %s", e->req.dbnode,
			     rc == -AR_ENOKEY ? "no such database" : ar_strerror(rc));
		break;
	}
	case PS_GETSLRU:
		exec_slru(t, e, lsn);
		break;
	default:
		fail(e, "unknown smgr message tag: %u", e->req.tag);
		break;
	}
	return true;
}

static void ps_exec(struct ps_core *pc, struct ps_entry *e)
{
	struct ps_conn *c = e->conn;
	struct ps_hosted *h = ps_host(pc, &c->tenant, e->shard, c->map.shard_count, e->error);
	struct ps_tl *t = h ? ps_timeline(pc, h, &c->timeline, e->error) : NULL;
	if (!t) {
		memset(&e->resp, 0, sizeof(e->resp));
		e->resp.tag = PS_R_ERROR;
		e->resp.error = e->error;
	} else if (!ps_run(t, e, pc->cache, pc->stats, pc->server->config.wait_lsn_timeout_ms,
			   pc->defer_misses)) {
		e->next_wait = pc->waiting;
		pc->waiting = e;
		wait_arm(pc);
		return;
	} else if (e->deferred) {
		pc->deferred[pc->deferred_count++] = e; /* ps_batch_run reads and finishes it */
		return;
	}
	ps_finish(pc, e);
}

/* ---- answers back to the connection's core ---- */

static void ps_msg_done(struct ar_core *core, struct ar_msg *msg)
{
	struct ps_entry *e = msg->ptr;
	(void)core;
	e->state = PS_DONE;
	e->conn->busy--;
	ar_pgconn_wake(e->conn->pgconn);
}

static void ps_finish(struct ps_core *pc, struct ps_entry *e)
{
	struct ps_conn *c = e->conn;
	if (c->home == pc) {
		e->state = PS_DONE;
		c->busy--;
		if (!pc->executing_inline)
			ar_pgconn_wake(c->pgconn);
		return;
	}
	struct ar_msg m = { .fn = ps_msg_done, .ptr = e, .from_core_index = pc->index };
	ps_send(pc, c->home->index, &m);
}

/* On a live tenant's ingest thread (it owns the store): run, then hand the
 * answer to the connection's core. */
static bool ps_live_job(struct live_job *job, struct ar_store *store, struct ar_timeline *tl,
			const struct ingest_state *st)
{
	struct ps_entry *e = (struct ps_entry *)((char *)job - offsetof(struct ps_entry, job));
	struct ps_conn *c = e->conn;
	struct ar_server *s = c->home->server;
	char th[33], lh[33], err[STORE_ERROR_BYTES];
	struct ps_tl t = { 0 };

	tl_id_hex(&c->tenant, th);
	tl_id_hex(&c->timeline, lh);
	memset(&e->resp, 0, sizeof(e->resp));
	if (!store) {
		fail(e, "tenant %s: the timeline is stopping or starting over; try again", th);
	} else {
		t.tl = tl;
		t.st = *st;
		if (memcmp(tl_id(tl), &c->timeline, sizeof(c->timeline)) != 0) {
			/* Another timeline of the tenant (a branch): its own state. */
			t.tl = tenant_timeline(store->tenant, &c->timeline);
			if (!t.tl)
				fail(e, "Timeline %s/%s was not found", th, lh);
			else if (store_state_read(store, &c->timeline, &t.st, err) < 0)
				fail(e, "timeline %s/%s: %s", th, lh, err);
		}
		if (e->resp.tag != PS_R_ERROR &&
		    !ps_run(&t, e, NULL, NULL, s->config.wait_lsn_timeout_ms, false))
			return false; /* waits for WAL */
	}
	struct ar_msg m = { .fn = ps_msg_done, .ptr = e };
	int rc;
	while ((rc = ar_runtime_post(s->runtime, c->home->index, &m)) == -EAGAIN)
		usleep(50); /* the core drains its posts every pass */
	if (rc < 0) {       /* -ESHUTDOWN: the core stopped; nobody will send this answer */
		free(e->slru);
		e->slru = NULL;
	}
	return true;
}

static void ps_msg_exec(struct ar_core *core, struct ar_msg *msg)
{
	struct ps_entry *e = msg->ptr;
	struct ar_server *s = e->conn->home->server;
	struct ps_core *pc = core_ps(s, ar_core_info(core)->index);
	ps_exec(pc, e);
	publish_layer_stats(pc);
}

/* ---- the listener's service ---- */

/* "pagestream_v2|v3 <tenant>[-<NNCC>] <timeline>"; 1: it is one (answered). */
static int ps_command(struct ps_core *pc, struct ps_conn *c, struct ar_pgconn *pgconn,
		      const char *query, struct pgw_out *out)
{
	char cmd[32], tenant[80], timeline[80], extra[8], hex[33], text[256];
	int n = sscanf(query, " %31s %79s %79s %7s", cmd, tenant, timeline, extra);
	enum ps_version v;
	if (n < 1 || (strcmp(cmd, "pagestream_v2") != 0 && strcmp(cmd, "pagestream_v3") != 0))
		return 0;
	v = cmd[12] == '3' ? PS_V3 : PS_V2;
	if (n != 3) {
		pgw_put_error(out, "ERROR", "42601",
			      "invalid pagestream command: expected <tenant> <timeline>",
			      "pagestream_v3 <tenant id>[-<shard NN><count CC>] <timeline id>");
		return 1;
	}
	uint32_t shard = 0, count = 0;
	size_t tlen = strlen(tenant);
	bool ok = tlen == 32 || (tlen == 37 && tenant[32] == '-' &&
				 sscanf(tenant + 33, "%2x%2x", &shard, &count) == 2 &&
				 isxdigit((unsigned char)tenant[36]));
	if (ok) {
		memcpy(hex, tenant, 32);
		hex[32] = '\0';
		ok = tl_id_from_hex(hex, &c->tenant) && strlen(timeline) == 32 &&
		     tl_id_from_hex(timeline, &c->timeline);
	}
	if (!ok) {
		snprintf(text, sizeof(text), "invalid tenant or timeline id: \"%.40s\" \"%.40s\"",
			 tenant, timeline);
		pgw_put_error(out, "ERROR", "22023", text,
			      "Ids are 32 hex digits; a shard is named <tenant>-<NN><CC>.");
		return 1;
	}
	uint32_t shards = tenant_shards(pc->server, &c->tenant);
	if (shards == 0) {
		snprintf(text, sizeof(text), "Tenant %s not found", hex);
		pgw_put_error(out, "ERROR", "58P01", text, NULL);
		return 1;
	}
	/* Unsharded: -0000 or -0001 names its one shard; else the count must match. */
	bool named = tlen == 37;
	if (named && ((shards == 1 && (count > 1 || shard != 0)) ||
		      (shards > 1 && (count != shards || shard >= count)))) {
		snprintf(text, sizeof(text),
			 "tenant %s has %u shard%s; shard %02x of %02x does not exist", hex, shards,
			 shards == 1 ? "" : "s", shard, count);
		pgw_put_error(out, "ERROR", "58P01", text, NULL);
		return 1;
	}
	c->map = (struct ar_shard_map){ .shard_count = shards,
					.stripe_blocks = AR_STRIPE_BLOCKS_DEFAULT };
	if (!timeline_dir_exists(pc->server, &c->tenant, &c->map, &c->timeline)) {
		snprintf(text, sizeof(text), "Timeline %s/%s was not found", hex, timeline);
		pgw_put_error(out, "ERROR", "58P01", text, NULL);
		return 1;
	}
	c->home = pc;
	c->pgconn = pgconn;
	c->version = v;
	c->named_shard = named ? (int32_t)shard : -1;
	c->live = ar_server_live_find(pc->server, &c->tenant);
	c->head = c->count = c->busy = 0;
	atomic_store(&c->gone, false);
	pgw_put_copy_both_response(out);
	return 2;
}

static int ps_query(void *svc, void *state, struct ar_pgconn *pgconn, const char *query,
		    struct pgw_out *out)
{
	struct ps_core *pc = svc;
	int r = ps_command(pc, state, pgconn, query, out);
	if (r == 2)
		return PGW_QUERY_COPYBOTH;
	if (r == 0)
		ar_pgservice_query(&pc->server->cores[pc->index], query, out);
	return PGW_QUERY_DONE;
}

/* An Error answer decided on the connection's core, without running anything. */
static void answer_now(struct ps_conn *c, struct ps_entry *e, const char *text)
{
	memset(&e->resp, 0, sizeof(e->resp));
	fail(e, "%s", text);
	e->state = PS_DONE;
	c->busy--;
}

static int ps_data(void *svc, void *state, const uint8_t *payload, uint32_t len, char *error)
{
	struct ps_core *pc = svc;
	struct ps_conn *c = state;
	struct ps_request req;
	const char *why = NULL;

	if (c->count == PS_WINDOW)
		return 0;
	if (ps_request_decode(c->version, payload, len, &req, &why) < 0) {
		if (len > 0 && (payload[0] > PS_GETSLRU))
			snprintf(error, PS_ERROR_TEXT_MAX, "unknown smgr message tag: %u",
				 payload[0]);
		else
			snprintf(error, PS_ERROR_TEXT_MAX, "invalid pagestream request: %s", why);
		return -1;
	}
	struct ps_entry *e = &c->e[(c->head + c->count) % PS_WINDOW];
	c->count++;
	c->busy++;
	e->conn = c;
	e->req = req;
	e->state = PS_QUEUED;
	e->deadline_ns = 0;
	e->slru = NULL;
	e->next_wait = NULL;
	if (c->live) {
		e->job.fn = ps_live_job;
		if (live_submit(c->live, &e->job) < 0)
			answer_now(c, e, "the tenant's live timeline is stopping");
		return 1;
	}
	/* GetPage goes to the shard owning the key; everything else to shard 0 (Neon's
	 * rule).  A shard-named connection is that shard's: other keys are refused. */
	uint32_t shard = 0;
	if (req.tag == PS_GETPAGE) {
		struct ar_key key = ar_key_rel_block(req_rel(&req), req.blkno);
		shard = ar_shard_of_key(&c->map, &key);
	}
	if (c->named_shard >= 0 && req.tag == PS_GETPAGE && shard != (uint32_t)c->named_shard) {
		char text[160];
		snprintf(text, sizeof(text),
			 "block %u of relation %u/%u/%u belongs to shard %u, not to shard %d",
			 req.blkno, req.rel.spc, req.rel.db, req.rel.relnode, shard,
			 c->named_shard);
		answer_now(c, e, text);
		return 1;
	}
	/* SLRU segments live on shard 0 only; sizes and directories on every shard. */
	e->shard = c->named_shard >= 0 && req.tag != PS_GETSLRU ? (uint32_t)c->named_shard : shard;
	uint32_t owner = shard_core(pc->server, &c->tenant, e->shard);
	if (owner == pc->index && req.tag == PS_GETPAGE) {
		if (pc->batch_count >= pc->server->config.read_batch_max)
			ps_batch_run(pc, c);      /* a full batch runs now */
		pc->batch[pc->batch_count++] = e; /* run at this stream's drain */
		return 1;
	}
	if (owner == pc->index) {
		pc->executing_inline = true;
		ps_exec(pc, e);
		pc->executing_inline = false;
		return 1;
	}
	struct ar_msg m = { .fn = ps_msg_exec, .ptr = e, .from_core_index = pc->index };
	ps_send(pc, owner, &m);
	return 1;
}

/* One batched engine read (tl_prefetch) for the deferred GetPages of one
 * timeline: each page's key and its relation's size key. */
static void ps_prefetch(struct ps_core *pc, struct ps_entry **list, uint32_t n)
{
	struct ar_key keys[2 * PS_WINDOW];
	ar_lsn lsns[2 * PS_WINDOW];
	uint32_t m = 0;
	struct ps_tl *t = list[0]->read_tl;

	for (uint32_t i = 0; i < n; i++) {
		struct ar_rel rel = req_rel(&list[i]->req);
		/* A relation's size once per run of its pages at one LSN. */
		const struct ps_rel *a = &list[i]->req.rel, *b = i ? &list[i - 1]->req.rel : NULL;
		if (!b || a->relnode != b->relnode || a->db != b->db || a->spc != b->spc ||
		    a->fork != b->fork || list[i]->read_lsn != list[i - 1]->read_lsn) {
			keys[m] = ar_key_rel_size(rel);
			lsns[m++] = list[i]->read_lsn;
		}
		keys[m] = ar_key_rel_block(rel, list[i]->req.blkno);
		lsns[m++] = list[i]->read_lsn;
	}
	const struct tl_stats *st = tl_stats(t->tl);
	uint64_t reads = st->prefetch_batches, blocks = st->prefetch_blocks;
	tl_prefetch(t->tl, keys, lsns, m);
	stat_add(&pc->stats->vectored_reads, st->prefetch_batches - reads);
	stat_add(&pc->stats->vectored_blocks, st->prefetch_blocks - blocks);
}

/* The GetPages ps_data gathered from stream c.  Those the page cache answers go
 * first; the misses are deferred, their layer blocks read in one batch per
 * timeline, then each is read and finished. */
static void ps_batch_run(struct ps_core *pc, struct ps_conn *c)
{
	uint32_t n = pc->batch_count;
	if (n == 0)
		return;
	pc->batch_count = 0;
	pc->deferred_count = 0;
	pc->defer_misses = n >= 2; /* one miss gains nothing from a batch */
	AR_ASSERT(n <= PS_WINDOW);
	for (uint32_t i = 0; i < n; i++) {
		/* Only c is drained next: another stream's answer needs its wake-up. */
		pc->executing_inline = pc->batch[i]->conn == c;
		ps_exec(pc, pc->batch[i]);
	}
	pc->defer_misses = false;
	struct ps_entry **d = pc->deferred;
	uint32_t nd = pc->deferred_count, done = 0;
	while (done < nd) { /* runs of one timeline (a stream reads one) */
		uint32_t run = 1;
		while (done + run < nd && d[done + run]->read_tl == d[done]->read_tl)
			run++;
		if (run >= 2)
			ps_prefetch(pc, d + done, run);
		done += run;
	}
	for (uint32_t i = 0; i < nd; i++) {
		pc->executing_inline = d[i]->conn == c;
		getpage_read(pc->cache, d[i]->read_tl, d[i], d[i]->read_lsn);
		d[i]->deferred = false;
		ps_finish(pc, d[i]);
	}
	pc->deferred_count = 0;
	pc->executing_inline = false;
	publish_layer_stats(pc);
}

static bool ps_drain(void *svc, void *state, struct pgw_out *out)
{
	struct ps_conn *c = state;
	ps_batch_run(svc, c);
	while (c->count > 0) {
		struct ps_entry *e = &c->e[c->head];
		if (e->state != PS_DONE)
			break;
		size_t n = ps_response_size(c->version, &e->req, &e->resp);
		if (out->cap - out->len < n + 5)
			break;
		uint8_t *p = out->data + out->len;
		p[0] = 'd';
		ar_put_be32(p + 1, (uint32_t)(n + 4));
		size_t w = ps_response_encode(c->version, &e->req, &e->resp, p + 5);
		AR_ASSERT(w == n);
		out->len += n + 5;
		free(e->slru);
		e->slru = NULL;
		e->state = PS_FREE;
		c->head = (c->head + 1) % PS_WINDOW;
		c->count--;
	}
	return c->count > 0;
}

/* A stream whose every request goes to one shard is served entirely by that shard's
 * core: a shard-named one, and any stream of an unsharded tenant.  A tenant-only
 * stream of a sharded tenant stays and routes each request by key. */
static int ps_handoff(void *svc, void *state)
{
	struct ps_core *pc = svc;
	struct ps_conn *c = state;
	if (c->live)
		return -1;
	if (c->named_shard >= 0)
		return (int)shard_core(pc->server, &c->tenant, (uint32_t)c->named_shard);
	if (c->map.shard_count <= 1)
		return (int)shard_core(pc->server, &c->tenant, 0);
	return -1;
}

static void ps_stream_attach(void *svc, void *state, void *window)
{
	struct ps_conn *c = state;
	(void)svc;
	c->e = window;
}

static void ps_adopt(void *svc, void *state, struct ar_pgconn *conn)
{
	struct ps_conn *c = state;
	c->home = svc;
	c->pgconn = conn;
	c->e = NULL; /* the window comes with the stream, on this core */
	AR_ASSERT(c->count == 0 && c->busy == 0);
}

static bool ps_close(void *svc, void *state)
{
	struct ps_conn *c = state;
	(void)svc;
	atomic_store(&c->gone, true); /* requests waiting for WAL finish at their next poll */
	if (c->busy > 0)
		return false;
	for (uint32_t i = 0; i < c->count; i++) {
		struct ps_entry *e = &c->e[(c->head + i) % PS_WINDOW];
		free(e->slru);
		e->slru = NULL;
	}
	c->count = 0;
	return true;
}

int ar_pageservice_core_start(struct ar_server *s, struct ar_core *core)
{
	uint32_t index = ar_core_info(core)->index;
	struct ps_core *pc = ar_arena_alloc(ar_core_arena(core), sizeof(*pc), 64);
	if (!pc)
		return -ENOMEM;
	memset(pc, 0, sizeof(*pc));
	pc->server = s;
	pc->core = core;
	pc->index = index;
	pc->stats = &s->cores[index].ps_stats;
	if (s->config.page_cache_bytes > 0) {
		int rc = pc_create(s->config.page_cache_bytes, ar_core_info(core)->numa_node,
				   &pc->cache);
		if (rc < 0)
			return rc;
	}
	int rc = lc_create(s->config.layer_cache_bytes, ar_core_info(core)->numa_node, &pc->layers);
	if (rc < 0)
		return rc;
	pc->ops = (struct ar_pgservice_ops){
		.state_bytes = sizeof(struct ps_conn),
		.query = ps_query,
		.data = ps_data,
		.drain = ps_drain,
		.close = ps_close,
		.stream_send_bytes = PS_RESPONSE_BYTES_MAX + 4096,
		.stream_state_bytes = PS_WINDOW * sizeof(struct ps_entry),
		.stream_attach = ps_stream_attach,
		.handoff = ps_handoff,
		.adopt = ps_adopt,
		.peers = s->pglisten_peers,
		.svc = pc,
		.password = s->config.pg_password[0] ? s->config.pg_password : NULL,
	};
	s->cores[index].ps = pc;
	return ar_pglisten_start(core, s->pg_listen_fd, &pc->ops, &s->pglisten[index]);
}

void ar_pageservice_core_stop(struct ar_server *s, struct ar_core *core)
{
	uint32_t index = ar_core_info(core)->index;
	struct ps_core *pc = s->cores[index].ps;
	ar_pglisten_stop(s->pglisten[index]);
	if (!pc)
		return;
	for (uint32_t i = 0; i < pc->hosted_count; i++) {
		store_close(pc->hosted[i]->store);
		ar_blockcache_destroy(pc->hosted[i]->blocks);
		free(pc->hosted[i]);
	}
	pc->hosted_count = 0;
	if (pc->layers)
		lc_destroy(pc->layers);
	pc->layers = NULL;
	if (pc->cache)
		pc_destroy(pc->cache);
	pc->cache = NULL;
	free(pc->outbox);
	pc->outbox = NULL;
	pc->outbox_count = pc->outbox_cap = 0;
}
