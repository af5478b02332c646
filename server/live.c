/*
 * live.c - The page server's live timelines: at startup every timeline whose
 * ingest state names a primary is started (ingest/live.h); `attach` starts one
 * on demand.  One streamed timeline per tenant (its store belongs to that
 * timeline's ingest thread); reads of the tenant's other timelines (branches)
 * run on the same thread.  A timeline that fails to start or stops on a bad
 * stream is reported, never fatal to the server.
 */
#include "server/server.h"

#include "common/err.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ar_live_set {
	pthread_mutex_t mu;                       /* writers: start, attach, load, stop */
	struct live_tl *tls[AR_LIVE_TENANTS_MAX]; /* append-only while the server runs */
	_Atomic uint32_t count;
};

static struct live_config server_live_config(const struct ar_server *s)
{
	struct live_config c;
	live_config_default(&c);
	c.data_dir = s->config.data_dir;
	c.receive = s->config.wal_receive != 0;
	c.status_interval_ms = (uint32_t)s->config.wal_status_interval_ms;
	c.checkpoint_interval_ms = (uint32_t)s->config.wal_checkpoint_interval_ms;
	c.store.checkpoint_distance_bytes = s->config.checkpoint_distance_bytes;
	c.store.cache_bytes = s->config.layer_cache_bytes;
	return c;
}

/* Any thread: the slots below the count (acquire) are filled and stay. */
static struct live_tl *find_tenant(struct ar_live_set *set, const struct tl_id *tenant)
{
	uint32_t n = atomic_load_explicit(&set->count, memory_order_acquire);
	for (uint32_t i = 0; i < n; i++)
		if (memcmp(live_tenant(set->tls[i]), tenant, sizeof(*tenant)) == 0)
			return set->tls[i];
	return NULL;
}

static int start_one(struct ar_server *s, const struct tl_id *tenant, const struct tl_id *timeline,
		     struct live_tl **out, char err[LIVE_ERROR_BYTES])
{
	struct ar_live_set *set = s->live;
	if (set->count == AR_LIVE_TENANTS_MAX) {
		snprintf(err, LIVE_ERROR_BYTES, "%d tenants stream already", AR_LIVE_TENANTS_MAX);
		return -ENOSPC;
	}
	if (ar_pageservice_claim(tenant, true) < 0) {
		snprintf(err, LIVE_ERROR_BYTES,
			 "the page service serves this tenant from its files; restart the server "
			 "to stream WAL into it");
		return -EBUSY;
	}
	struct live_config c = server_live_config(s);
	c.tenant = *tenant;
	c.timeline = *timeline;
	int rc = live_start(&c, out, err);
	if (rc < 0) {
		ar_pageservice_unclaim(tenant);
		return rc;
	}
	set->tls[set->count] = *out;
	/* Readers (the cores, looking a tenant up for a page stream) take no lock: the
	 * slot is filled before the count that shows it. */
	atomic_store_explicit(&set->count, set->count + 1, memory_order_release);
	return 0;
}

/* A timeline whose ingest state names a primary (ingest/<tenant>/<timeline>.json,
 * written by store_state_write). */
static bool attached(const char *path)
{
	json_error_t jerr;
	json_t *st = json_load_file(path, 0, &jerr);
	const char *conninfo = json_string_value(json_object_get(st, "primary_conninfo"));
	bool yes = conninfo && conninfo[0];
	json_decref(st);
	return yes;
}

static void load_tenant(struct ar_server *s, const char *tenant_hex)
{
	char dir[AR_PATH_BYTES_MAX + 80], path[AR_PATH_BYTES_MAX + 160], err[LIVE_ERROR_BYTES];
	struct tl_id tenant, timeline;
	if (!tl_id_from_hex(tenant_hex, &tenant))
		return;
	snprintf(dir, sizeof(dir), "%s/ingest/%s", s->config.data_dir, tenant_hex);
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
		char hex[33];
		if (strlen(e->d_name) != 37 || strcmp(e->d_name + 32, ".json") != 0)
			continue;
		memcpy(hex, e->d_name, 32);
		hex[32] = '\0';
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!tl_id_from_hex(hex, &timeline) || !attached(path))
			continue;
		struct live_tl *t;
		if (find_tenant(s->live, &tenant))
			AR_LOG(WARNING, "live",
			       "tenant %s: timeline %s not started: the tenant "
			       "streams into another timeline already",
			       tenant_hex, hex);
		else if (start_one(s, &tenant, &timeline, &t, err) < 0)
			AR_LOG(WARNING, "live", "tenant %s timeline %s not started: %s", tenant_hex,
			       hex, err);
		else
			AR_LOG(LOG, "live", "tenant %s timeline %s started", tenant_hex, hex);
	}
	if (d)
		closedir(d);
}

int ar_server_live_init(struct ar_server *s)
{
	struct ar_live_set *set = calloc(1, sizeof(*set));
	if (!set)
		return -ENOMEM;
	pthread_mutex_init(&set->mu, NULL);
	s->live = set;
	return 0;
}

int ar_server_live_load(struct ar_server *s)
{
	struct ar_live_set *set = s->live;
	char dir[AR_PATH_BYTES_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/ingest", s->config.data_dir);
	DIR *d = opendir(dir);
	pthread_mutex_lock(&set->mu);
	for (struct dirent *e; d && (e = readdir(d)) != NULL;)
		if (strlen(e->d_name) == 32)
			load_tenant(s, e->d_name);
	pthread_mutex_unlock(&set->mu);
	if (d)
		closedir(d);
	return 0;
}

void ar_server_live_stop(struct ar_server *s)
{
	struct ar_live_set *set = s->live;
	if (!set)
		return;
	for (uint32_t i = 0; i < set->count; i++)
		live_stop(set->tls[i]);
	pthread_mutex_destroy(&set->mu);
	free(set);
	s->live = NULL;
}

int ar_server_live_attach(struct ar_server *s, const struct tl_id *tenant,
			  const struct tl_id *timeline, const char *conninfo, const char *slot,
			  const char *appname, char err[LIVE_ERROR_BYTES])
{
	struct ar_live_set *set = s->live;
	pthread_mutex_lock(&set->mu);
	struct live_tl *t = find_tenant(set, tenant);
	int rc = 0;
	if (t && memcmp(live_timeline(t), timeline, sizeof(*timeline)) != 0) {
		char hex[33];
		tl_id_hex(live_timeline(t), hex);
		snprintf(err, LIVE_ERROR_BYTES, "the tenant streams into timeline %s already", hex);
		rc = -EBUSY;
	} else if (!t) {
		rc = start_one(s, tenant, timeline, &t, err);
	}
	pthread_mutex_unlock(&set->mu);
	return rc < 0 ? rc : live_attach(t, conninfo, slot, appname, err);
}

struct live_tl *ar_server_live_find(struct ar_server *s, const struct tl_id *tenant)
{
	/* No lock: a core must not wait while another thread starts a timeline. */
	return find_tenant(s->live, tenant);
}

uint32_t ar_server_live_list(struct ar_server *s, struct live_tl **out, uint32_t max)
{
	pthread_mutex_lock(&s->live->mu);
	uint32_t n = s->live->count < max ? s->live->count : max;
	memcpy(out, s->live->tls, n * sizeof(*out));
	pthread_mutex_unlock(&s->live->mu);
	return n;
}
