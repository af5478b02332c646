/*
 * inmem.c - In-memory layer: an open-addressing hash of keys, each with a
 * growing array of versions (LSN, offset, length, header) in LSN order; value
 * bytes appended to the backing file.
 *
 * Invariants:
 *  1. A key's versions are in strictly increasing LSN order (puts arrive in LSN
 *     order per timeline; an equal (key, LSN) is refused).
 *  2. bytes = the backing file's length; every version's bytes lie below it.
 */
#include "engine/inmem.h"

#include "common/assert.h"
#include "common/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct version {
	ar_lsn lsn;
	uint64_t offset; /* of the encoded value in the backing file */
	uint32_t len;    /* encoded bytes */
};

struct slot {
	bool used;
	struct ar_key key;
	struct version *versions;
	uint32_t count;
	uint32_t cap;
};

struct inmem {
	struct ar_vfs *vfs;
	int fd;
	char *path;
	ar_lsn start_lsn;
	ar_lsn end_lsn;
	bool frozen;
	uint64_t bytes;
	uint64_t value_count;
	struct slot *slots;
	uint64_t slot_cap; /* a power of two */
	uint64_t key_count;
	uint8_t *scratch;
	size_t scratch_cap;
	uint8_t *tail; /* the newest values, not yet written to the file */
	uint64_t tail_off;
	size_t tail_len;
	uint8_t *whole; /* the file's written part, read back while writing a layer */
};

#define INMEM_TAIL_BYTES (1u << 20)
#define INMEM_READ_BYTES (8u << 20)
#define INMEM_WHOLE_MAX (1ull << 30)

static uint64_t key_hash(const struct ar_key *k)
{
	uint64_t h = k->f1 * 0x9E3779B97F4A7C15ull;
	h = (h ^ k->f2) * 0xC2B2AE3D27D4EB4Full;
	h = (h ^ k->f3) * 0x165667B19E3779F9ull;
	h = (h ^ k->f4) * 0x9E3779B97F4A7C15ull;
	h = (h ^ k->f5) * 0xC2B2AE3D27D4EB4Full;
	h = (h ^ k->f6) * 0x165667B19E3779F9ull;
	return h ^ (h >> 31);
}

int inmem_create(struct ar_vfs *vfs, const char *path, ar_lsn start_lsn, struct inmem **out)
{
	struct inmem *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->vfs = vfs;
	m->start_lsn = start_lsn;
	m->end_lsn = AR_LSN_MAX;
	m->slot_cap = 1024;
	m->slots = calloc(m->slot_cap, sizeof(*m->slots));
	m->path = strdup(path);
	int rc = m->slots && m->path ? 0 : -ENOMEM;
	if (rc == 0)
		rc = ar_vfs_open(vfs, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &m->fd);
	if (rc < 0) {
		free(m->slots);
		free(m->path);
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void inmem_destroy(struct inmem *m)
{
	if (!m)
		return;
	for (uint64_t i = 0; i < m->slot_cap; i++)
		free(m->slots[i].versions);
	free(m->slots);
	ar_vfs_close(m->vfs, m->fd);
	ar_vfs_unlink(m->vfs, m->path); /* best effort: a leftover is removed at open */
	free(m->path);
	free(m->scratch);
	free(m->tail);
	free(m->whole);
	free(m);
}

/* Write the tail to the backing file: one I/O per megabyte of values. */
static int tail_drain(struct inmem *m)
{
	if (m->tail_len > 0) {
		int64_t n = ar_vfs_pwrite(m->vfs, m->fd, m->tail, m->tail_len, m->tail_off);
		if (n < 0)
			return (int)n;
	}
	m->tail_off = m->bytes;
	m->tail_len = 0;
	return 0;
}

/* Append an encoded value at m->bytes. */
static int inmem_append(struct inmem *m, const uint8_t *buf, size_t len)
{
	if (!m->tail)
		m->tail = malloc(INMEM_TAIL_BYTES);
	if (!m->tail || m->tail_len + len > INMEM_TAIL_BYTES) {
		int rc = tail_drain(m);
		if (rc < 0)
			return rc;
	}
	if (!m->tail || len > INMEM_TAIL_BYTES) {
		int64_t n = ar_vfs_pwrite(m->vfs, m->fd, buf, len, m->bytes);
		m->tail_off = m->bytes + len;
		return n < 0 ? (int)n : 0;
	}
	memcpy(m->tail + m->tail_len, buf, len);
	m->tail_len += len;
	return 0;
}

static struct slot *slot_find(struct slot *slots, uint64_t cap, const struct ar_key *key)
{
	uint64_t i = key_hash(key) & (cap - 1);
	while (slots[i].used && ar_key_cmp(&slots[i].key, key) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int slots_grow(struct inmem *m)
{
	uint64_t cap = m->slot_cap * 2;
	struct slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (uint64_t i = 0; i < m->slot_cap; i++)
		if (m->slots[i].used)
			*slot_find(slots, cap, &m->slots[i].key) = m->slots[i];
	free(m->slots);
	m->slots = slots;
	m->slot_cap = cap;
	return 0;
}

int inmem_put(struct inmem *m, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	AR_ASSERT(!m->frozen);
	AR_ASSERT(lsn >= m->start_lsn);
	if ((m->key_count + 1) * 10 > m->slot_cap * 7) {
		int rc = slots_grow(m);
		if (rc < 0)
			return rc;
	}
	struct slot *s = slot_find(m->slots, m->slot_cap, key);
	if (s->used && s->count > 0 && s->versions[s->count - 1].lsn >= lsn)
		return s->versions[s->count - 1].lsn == lsn ? -EEXIST : -EINVAL;
	if (!s->used || s->count == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 2;
		struct version *nv = realloc(s->versions, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		s->versions = nv;
		s->cap = cap;
	}
	size_t len = ar_value_encoded_bytes(v);
	if (len > m->scratch_cap) {
		uint8_t *b = realloc(m->scratch, len);
		if (!b)
			return -ENOMEM;
		m->scratch = b;
		m->scratch_cap = len;
	}
	ar_value_encode(v, m->scratch);
	int rc = inmem_append(m, m->scratch, len);
	if (rc < 0)
		return rc;
	if (!s->used) {
		s->used = true;
		s->key = *key;
		m->key_count++;
	}
	s->versions[s->count++] =
	    (struct version){ .lsn = lsn, .offset = m->bytes, .len = (uint32_t)len };
	m->bytes += len;
	m->value_count++;
	return 0;
}

/* Read one version back from the backing file and hand it to fn. */
static int version_emit(struct inmem *m, const struct ar_key *key, const struct version *ver,
			lyr_value_fn *fn, void *ctx)
{
	struct ar_value v;
	size_t used;

	if (ver->len > m->scratch_cap) {
		uint8_t *b = realloc(m->scratch, ver->len);
		if (!b)
			return -ENOMEM;
		m->scratch = b;
		m->scratch_cap = ver->len;
	}
	const uint8_t *bytes = m->scratch;
	if (ver->offset >= m->tail_off) {
		bytes = m->tail + (ver->offset - m->tail_off);
	} else if (m->whole) {
		bytes = m->whole + ver->offset;
	} else {
		int64_t n = ar_vfs_pread(m->vfs, m->fd, m->scratch, ver->len, ver->offset);
		if (n < 0)
			return (int)n;
		if ((uint32_t)n != ver->len)
			return -AR_ECORRUPT;
	}
	if (ar_value_decode(bytes, ver->len, &v, &used) < 0)
		return -AR_ECORRUPT; /* our own file changed under us */
	return fn(ctx, key, ver->lsn, &v);
}

int inmem_get(struct inmem *m, const struct ar_key *key, ar_lsn lsn_below, lyr_value_fn *fn,
	      void *ctx)
{
	struct slot *s = slot_find(m->slots, m->slot_cap, key);

	if (!s->used)
		return 0;
	for (uint32_t i = 0; i < s->count && s->versions[i].lsn < lsn_below; i++) {
		int rc = version_emit(m, key, &s->versions[i], fn, ctx);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void inmem_freeze(struct inmem *m, ar_lsn end_lsn)
{
	AR_ASSERT(!m->frozen);
	AR_ASSERT(end_lsn > m->start_lsn);
	m->frozen = true;
	m->end_lsn = end_lsn;
}

bool inmem_is_frozen(const struct inmem *m)
{
	return m->frozen;
}

static int slot_ptr_cmp(const void *a, const void *b)
{
	const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
	return ar_key_cmp(&x->key, &y->key);
}

struct write_ctx {
	struct lyr_writer *w;
};

static int write_one(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	struct write_ctx *wc = ctx;
	return lyr_writer_append(wc->w, key, lsn, v);
}

/* Read the written part of the backing file into memory in large reads, so
 * writing a layer (values in key order: all over the file) does no small I/O.
 * Too large a layer falls back to a read per value. */
static int whole_load(struct inmem *m)
{
	if (m->tail_off == 0 || m->tail_off > INMEM_WHOLE_MAX)
		return 0;
	m->whole = malloc(m->tail_off);
	if (!m->whole)
		return 0;
	for (uint64_t off = 0; off < m->tail_off;) {
		uint64_t want = m->tail_off - off < INMEM_READ_BYTES ? m->tail_off - off
								     : INMEM_READ_BYTES;
		int64_t n = ar_vfs_pread(m->vfs, m->fd, m->whole + off, want, off);
		if (n <= 0) {
			free(m->whole);
			m->whole = NULL;
			return n < 0 ? (int)n : -AR_ECORRUPT;
		}
		off += (uint64_t)n;
	}
	return 0;
}

int inmem_write_layer(struct inmem *m, struct ar_vfs *vfs, const char *path,
		      const struct lyr_writer_options *options, struct lyr_info *info_out)
{
	AR_ASSERT(m->frozen);
	if (m->key_count == 0)
		return -ENODATA;
	struct slot **sorted = malloc(m->key_count * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	uint64_t n = 0;
	for (uint64_t i = 0; i < m->slot_cap; i++)
		if (m->slots[i].used)
			sorted[n++] = &m->slots[i];
	qsort(sorted, n, sizeof(*sorted), slot_ptr_cmp);
	struct ar_key last = sorted[n - 1]->key;
	struct lyr_info info = { .kind = LYR_DELTA,
				 .keys = { sorted[0]->key, ar_key_next(&last) },
				 .lsn_start = m->start_lsn,
				 .lsn_end = m->end_lsn };
	struct write_ctx wc = { 0 };
	int rc = whole_load(m);
	if (rc == 0)
		rc = lyr_writer_create(vfs, path, &info, options, &wc.w);
	for (uint64_t i = 0; rc == 0 && i < n; i++)
		for (uint32_t j = 0; rc == 0 && j < sorted[i]->count; j++)
			rc = version_emit(m, &sorted[i]->key, &sorted[i]->versions[j], write_one,
					  &wc);
	if (rc == 0)
		rc = lyr_writer_finish(wc.w, info_out);
	else if (wc.w)
		lyr_writer_abort(wc.w);
	free(sorted);
	free(m->whole);
	m->whole = NULL;
	return rc;
}

ar_lsn inmem_start_lsn(const struct inmem *m)
{
	return m->start_lsn;
}

ar_lsn inmem_end_lsn(const struct inmem *m)
{
	return m->end_lsn;
}

uint64_t inmem_bytes(const struct inmem *m)
{
	return m->bytes;
}

uint64_t inmem_value_count(const struct inmem *m)
{
	return m->value_count;
}
