/*
 * layer.c - Layer file writer and reader.  Layout: engine/README.md, "Layer
 * file format".  In short:
 *
 *   [header 4096 B][value block]...[value block][leaf nodes...][level 1 nodes]...[root]
 *
 * Invariants:
 *  1. Values are appended in strictly increasing (key, LSN); the index is built
 *     bottom-up after the last block, leaves contiguous, so a scan walks leaves
 *     by offset.
 *  2. Every checksum is computed before a write and verified after every read.
 *  3. The reader checks every offset and length against the file's size and the
 *     format's limits before it uses it, and a value's own (key, LSN) against the
 *     index entry that led to it.
 * Depends on: vfs (all I/O), blockcache (reads), crc32c, zstd.
 */
#include "engine/layer.h"
#include "common/bytes.h"

#include "common/assert.h"
#include "common/crc32c.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define LYR_MAGIC 0x4152474Cu       /* "ARGL" */
#define LYR_BLOCK_MAGIC 0x41524742u /* "ARGB" */
#define LYR_NODE_MAGIC 0x4958u      /* "IX" */
#define LYR_BLOCK_HEADER_BYTES 20
#define LYR_NODE_HEADER_BYTES 12
#define LYR_LEAF_ENTRY_BYTES 42
#define LYR_INNER_ENTRY_BYTES 34
#define LYR_RECORD_HEADER_BYTES (AR_KEY_BYTES + 8)
#define LYR_INDEX_LEVELS_MAX 16

enum { CODEC_PLAIN = 0, CODEC_ZSTD = 1 };

/* ---- big-endian helpers ---- */

/* ---- names ---- */

void lyr_name(const struct lyr_info *info, char out[LYR_NAME_BYTES])
{
	char k0[AR_KEY_HEX_BYTES], k1[AR_KEY_HEX_BYTES];

	ar_key_hex(&info->keys.start, k0);
	ar_key_hex(&info->keys.end, k1);
	if (info->kind == LYR_IMAGE)
		snprintf(out, LYR_NAME_BYTES, "%s-%s__%016" PRIX64, k0, k1, info->lsn_start);
	else
		snprintf(out, LYR_NAME_BYTES, "%s-%s__%016" PRIX64 "-%016" PRIX64, k0, k1,
			 info->lsn_start, info->lsn_end);
}

static bool parse_lsn_hex(const char *s, size_t len, ar_lsn *out)
{
	ar_lsn v = 0;

	if (len != 16)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return false;
		v = v << 4 | (ar_lsn)d;
	}
	*out = v;
	return true;
}

bool lyr_name_parse(const char *name, struct lyr_info *info)
{
	char hex[AR_KEY_HEX_BYTES];
	size_t len = strlen(name);

	memset(info, 0, sizeof(*info));
	if (len != 36 + 1 + 36 + 2 + 16 && len != 36 + 1 + 36 + 2 + 16 + 1 + 16)
		return false;
	if (name[36] != '-' || name[73] != '_' || name[74] != '_')
		return false;
	memcpy(hex, name, 36);
	hex[36] = '\0';
	if (!ar_key_from_hex(hex, &info->keys.start))
		return false;
	memcpy(hex, name + 37, 36);
	if (!ar_key_from_hex(hex, &info->keys.end))
		return false;
	if (!parse_lsn_hex(name + 75, 16, &info->lsn_start))
		return false;
	if (len == 91) {
		info->kind = LYR_IMAGE;
		info->lsn_end = info->lsn_start + 1;
		return true;
	}
	info->kind = LYR_DELTA;
	return name[91] == '-' && parse_lsn_hex(name + 92, 16, &info->lsn_end);
}

/* ---- writer ---- */

struct leaf_entry {
	uint8_t key[AR_KEY_BYTES];
	ar_lsn lsn;
	uint64_t block_offset;
	uint32_t block_bytes;  /* header + stored bytes */
	uint32_t value_offset; /* in the raw block */
};

struct lyr_writer {
	struct ar_vfs *vfs;
	int fd;
	struct lyr_info info;
	struct lyr_writer_options opt;
	ZSTD_CCtx *zstd;
	uint64_t offset; /* where the next block goes */
	uint8_t *raw;    /* the block being filled */
	size_t raw_len;
	size_t raw_cap;
	uint8_t *stored; /* compression output */
	size_t stored_cap;
	size_t block_first_entry; /* entries of the current block start here */
	struct leaf_entry *entries;
	size_t entry_count;
	size_t entry_cap;
	uint8_t last_key[AR_KEY_BYTES];
	ar_lsn last_lsn;
	uint8_t *wbuf; /* consecutive writes gathered into one I/O */
	size_t wbuf_len;
	uint64_t wbuf_off;
};

#define LYR_WRITE_BUFFER_BYTES (1u << 20)

static int writer_drain(struct lyr_writer *w)
{
	if (w->wbuf_len == 0)
		return 0;
	int64_t n = ar_vfs_pwrite(w->vfs, w->fd, w->wbuf, w->wbuf_len, w->wbuf_off);
	w->wbuf_len = 0;
	return n < 0 ? (int)n : 0;
}

/* Writes land in a buffer while they continue each other; one I/O per megabyte. */
static int writer_write(struct lyr_writer *w, const void *buf, size_t len, uint64_t offset)
{
	bool follows = w->wbuf_len > 0 && offset == w->wbuf_off + w->wbuf_len;
	if (w->wbuf && follows && w->wbuf_len + len <= LYR_WRITE_BUFFER_BYTES) {
		memcpy(w->wbuf + w->wbuf_len, buf, len);
		w->wbuf_len += len;
		return 0;
	}
	int rc = writer_drain(w);
	if (rc < 0)
		return rc;
	if (!w->wbuf || len > LYR_WRITE_BUFFER_BYTES) {
		int64_t n = ar_vfs_pwrite(w->vfs, w->fd, buf, len, offset);
		return n < 0 ? (int)n : 0;
	}
	memcpy(w->wbuf, buf, len);
	w->wbuf_len = len;
	w->wbuf_off = offset;
	return 0;
}

int lyr_writer_create(struct ar_vfs *vfs, const char *path, const struct lyr_info *info,
		      const struct lyr_writer_options *options, struct lyr_writer **writer_out)
{
	AR_ASSERT(info->kind == LYR_DELTA || info->kind == LYR_IMAGE);
	AR_ASSERT(info->lsn_start < info->lsn_end);
	AR_ASSERT(info->kind == LYR_DELTA || info->lsn_end == info->lsn_start + 1);
	AR_ASSERT(ar_key_cmp(&info->keys.start, &info->keys.end) < 0);
	struct lyr_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->vfs = vfs;
	w->info = *info;
	w->opt = options ? *options : (struct lyr_writer_options){ 0 };
	if (!w->opt.block_target_bytes)
		w->opt.block_target_bytes = LYR_BLOCK_TARGET_BYTES_DEFAULT;
	if (!w->opt.index_node_bytes)
		w->opt.index_node_bytes = LYR_NODE_BYTES_DEFAULT;
	if (!w->opt.zstd_level)
		w->opt.zstd_level = 1;
	AR_ASSERT(w->opt.index_node_bytes >= LYR_NODE_BYTES_MIN);
	AR_ASSERT(w->opt.index_node_bytes <= LYR_NODE_BYTES_MAX);
	AR_ASSERT((w->opt.index_node_bytes & (w->opt.index_node_bytes - 1)) == 0);
	w->offset = LYR_HEADER_BYTES;
	w->zstd = ZSTD_createCCtx();
	w->wbuf = malloc(LYR_WRITE_BUFFER_BYTES); /* without it, every write is one I/O */
	int rc = w->zstd ? 0 : -ENOMEM;
	if (rc == 0)
		rc = ar_vfs_open(vfs, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &w->fd);
	if (rc < 0) {
		ZSTD_freeCCtx(w->zstd);
		free(w->wbuf);
		free(w);
		return rc;
	}
	*writer_out = w;
	return 0;
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *p = realloc(*buf, n * elem);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/* Compress and write the current block; fill in its entries' block facts. */
static int writer_flush_block(struct lyr_writer *w)
{
	if (w->raw_len == 0)
		return 0;
	size_t bound = ZSTD_compressBound(w->raw_len);
	int rc = grow((void **)&w->stored, &w->stored_cap, LYR_BLOCK_HEADER_BYTES + bound, 1);
	if (rc < 0)
		return rc;
	uint8_t *payload = w->stored + LYR_BLOCK_HEADER_BYTES;
	size_t n =
	    ZSTD_compressCCtx(w->zstd, payload, bound, w->raw, w->raw_len, w->opt.zstd_level);
	uint8_t codec = CODEC_ZSTD;
	if (ZSTD_isError(n) || n >= w->raw_len) {
		memcpy(payload, w->raw, w->raw_len); /* incompressible: store as it is */
		n = w->raw_len;
		codec = CODEC_PLAIN;
	}
	uint8_t *h = w->stored;
	ar_put_be32(h, LYR_BLOCK_MAGIC);
	h[4] = codec;
	h[5] = h[6] = h[7] = 0;
	ar_put_be32(h + 8, (uint32_t)w->raw_len);
	ar_put_be32(h + 12, (uint32_t)n);
	ar_put_be32(h + 16, ar_crc32c(payload, n));
	uint32_t block_bytes = (uint32_t)(LYR_BLOCK_HEADER_BYTES + n);
	rc = writer_write(w, w->stored, block_bytes, w->offset);
	if (rc < 0)
		return rc;
	for (size_t i = w->block_first_entry; i < w->entry_count; i++) {
		w->entries[i].block_offset = w->offset;
		w->entries[i].block_bytes = block_bytes;
	}
	w->offset += block_bytes;
	w->raw_len = 0;
	w->block_first_entry = w->entry_count;
	return 0;
}

int lyr_writer_append(struct lyr_writer *w, const struct ar_key *key, ar_lsn lsn,
		      const struct ar_value *value)
{
	uint8_t kb[AR_KEY_BYTES];

	ar_key_encode(key, kb);
	AR_ASSERT(ar_key_range_contains(&w->info.keys, key));
	AR_ASSERT(lsn >= w->info.lsn_start && lsn < w->info.lsn_end);
	if (w->entry_count > 0) {
		int c = memcmp(w->last_key, kb, AR_KEY_BYTES);
		AR_ASSERT(c < 0 || (c == 0 && w->last_lsn < lsn));
	}
	size_t rec = LYR_RECORD_HEADER_BYTES + ar_value_encoded_bytes(value);
	if (w->raw_len > 0 && w->raw_len + rec > w->opt.block_target_bytes) {
		int rc = writer_flush_block(w);
		if (rc < 0)
			return rc;
	}
	int rc = grow((void **)&w->raw, &w->raw_cap, w->raw_len + rec, 1);
	if (rc == 0)
		rc = grow((void **)&w->entries, &w->entry_cap, w->entry_count + 1,
			  sizeof(*w->entries));
	if (rc < 0)
		return rc;
	struct leaf_entry *e = &w->entries[w->entry_count++];
	memcpy(e->key, kb, AR_KEY_BYTES);
	e->lsn = lsn;
	e->value_offset = (uint32_t)w->raw_len;
	uint8_t *p = w->raw + w->raw_len;
	memcpy(p, kb, AR_KEY_BYTES);
	ar_put_be64(p + AR_KEY_BYTES, lsn);
	ar_value_encode(value, p + LYR_RECORD_HEADER_BYTES);
	w->raw_len += rec;
	memcpy(w->last_key, kb, AR_KEY_BYTES);
	w->last_lsn = lsn;
	return 0;
}

/* One node: header, then count entries of entry_bytes from fill(). */
static void node_seal(uint8_t *node, uint32_t node_bytes, uint8_t level, uint16_t count)
{
	ar_put_be16(node, LYR_NODE_MAGIC);
	node[2] = level;
	node[3] = 0;
	ar_put_be16(node + 4, count);
	ar_put_be16(node + 6, 0);
	ar_put_be32(node + 8, 0);
	ar_put_be32(node + 8, ar_crc32c(node, node_bytes));
}

/* Write one level of nodes; firsts[] receives each node's first (key, lsn) as an
 * inner entry for the level above (child offset filled in). */
static int writer_level(struct lyr_writer *w, uint8_t level, const uint8_t *entries, size_t count,
			uint32_t entry_bytes, uint8_t *firsts, size_t *nodes_out)
{
	uint32_t nb = w->opt.index_node_bytes;
	uint32_t per_node = (nb - LYR_NODE_HEADER_BYTES) / entry_bytes;
	uint8_t *node = calloc(1, nb);
	if (!node)
		return -ENOMEM;
	size_t nodes = 0;
	int rc = 0;
	for (size_t i = 0; i < count && rc == 0; i += per_node, nodes++) {
		size_t n = count - i < per_node ? count - i : per_node;
		memset(node, 0, nb);
		memcpy(node + LYR_NODE_HEADER_BYTES, entries + i * entry_bytes, n * entry_bytes);
		node_seal(node, nb, level, (uint16_t)n);
		uint8_t *f = firsts + nodes * LYR_INNER_ENTRY_BYTES;
		memcpy(f, entries + i * entry_bytes, AR_KEY_BYTES + 8);
		ar_put_be64(f + AR_KEY_BYTES + 8, w->offset);
		rc = writer_write(w, node, nb, w->offset);
		w->offset += nb;
	}
	free(node);
	*nodes_out = nodes;
	return rc;
}

/* Serialise the leaf entries, then build levels until one node remains. */
static int writer_index(struct lyr_writer *w, uint64_t *root_out, uint32_t *levels_out,
			uint64_t *leaves_out)
{
	size_t n = w->entry_count;
	uint8_t *cur = malloc((n ? n : 1) * LYR_LEAF_ENTRY_BYTES);
	uint8_t *up = malloc((n ? n : 1) * LYR_INNER_ENTRY_BYTES);
	int rc = cur && up ? 0 : -ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		uint8_t *p = cur + i * LYR_LEAF_ENTRY_BYTES;
		memcpy(p, w->entries[i].key, AR_KEY_BYTES);
		ar_put_be64(p + 18, w->entries[i].lsn);
		ar_put_be64(p + 26, w->entries[i].block_offset);
		ar_put_be32(p + 34, w->entries[i].block_bytes);
		ar_put_be32(p + 38, w->entries[i].value_offset);
	}
	uint32_t entry_bytes = LYR_LEAF_ENTRY_BYTES;
	uint32_t level = 0;
	*root_out = 0;
	*leaves_out = 0;
	while (rc == 0 && n > 0) {
		size_t nodes;
		uint64_t first_node = w->offset;
		rc = writer_level(w, (uint8_t)level, cur, n, entry_bytes, up, &nodes);
		if (level == 0)
			*leaves_out = nodes;
		level++;
		if (rc == 0 && nodes == 1) {
			*root_out = first_node;
			break;
		}
		uint8_t *t = cur;
		cur = up;
		up = t;
		n = nodes;
		entry_bytes = LYR_INNER_ENTRY_BYTES;
	}
	free(cur);
	free(up);
	*levels_out = level;
	return rc;
}

static void header_encode(const struct lyr_info *info, uint64_t data_end, uint64_t root,
			  uint64_t leaves, uint8_t out[LYR_HEADER_BYTES])
{
	memset(out, 0, LYR_HEADER_BYTES);
	ar_put_be32(out, LYR_MAGIC);
	ar_put_be16(out + 4, LYR_FORMAT_VERSION);
	out[6] = (uint8_t)info->kind;
	ar_key_encode(&info->keys.start, out + 8);
	ar_key_encode(&info->keys.end, out + 26);
	ar_put_be64(out + 48, info->lsn_start);
	ar_put_be64(out + 56, info->lsn_end);
	ar_put_be64(out + 64, info->value_count);
	ar_put_be64(out + 72, data_end);
	ar_put_be64(out + 80, root);
	ar_put_be32(out + 88, info->index_levels);
	ar_put_be32(out + 92, info->index_node_bytes);
	ar_put_be64(out + 96, leaves);
	ar_put_be64(out + 104, info->file_bytes);
	ar_put_be32(out + LYR_HEADER_BYTES - 4, ar_crc32c(out, LYR_HEADER_BYTES - 4));
}

int lyr_writer_finish(struct lyr_writer *w, struct lyr_info *info_out)
{
	uint8_t *header = malloc(LYR_HEADER_BYTES);
	int rc = header ? writer_flush_block(w) : -ENOMEM;
	uint64_t data_end = w->offset, root = 0, leaves = 0;
	uint32_t levels = 0;

	if (rc == 0)
		rc = writer_index(w, &root, &levels, &leaves);
	if (rc == 0) {
		w->info.value_count = w->entry_count;
		w->info.index_levels = levels;
		w->info.index_node_bytes = w->opt.index_node_bytes;
		w->info.file_bytes = w->offset;
		header_encode(&w->info, data_end, root, leaves, header);
		rc = writer_write(w, header, LYR_HEADER_BYTES, 0);
	}
	if (rc == 0)
		rc = writer_drain(w);
	if (rc == 0)
		rc = ar_vfs_fsync(w->vfs, w->fd);
	if (rc == 0 && info_out)
		*info_out = w->info;
	free(header);
	lyr_writer_abort(w);
	return rc;
}

void lyr_writer_abort(struct lyr_writer *w)
{
	if (!w)
		return;
	ar_vfs_close(w->vfs, w->fd);
	ZSTD_freeCCtx(w->zstd);
	free(w->raw);
	free(w->stored);
	free(w->entries);
	free(w->wbuf);
	free(w);
}

uint64_t lyr_writer_bytes(const struct lyr_writer *w)
{
	return w->offset + w->raw_len;
}

/* ---- reader ---- */

struct lyr_reader {
	struct ar_vfs *vfs;
	struct ar_blockcache *cache;
	int fd;
	uint64_t file_id;
	char *path;
	struct lyr_info info;
	uint64_t data_end;
	uint64_t root;
	uint64_t leaves;
	ZSTD_DCtx *zstd;
	uint8_t *node; /* the node being searched (a copy: the cache may evict) */
	uint8_t *leaf; /* the leaf being iterated (a copy) */
	uint8_t *io;   /* a block as read from disk */
	size_t io_cap;
	uint8_t *raw; /* a block decompressed */
	size_t raw_cap;
	char err[LYR_ERROR_BYTES];
};

static int reader_corrupt(struct lyr_reader *r, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reader_corrupt(struct lyr_reader *r, uint64_t offset, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, sizeof(r->err), "layer file \"%s\": %s at offset %" PRIu64, r->path, what,
		 offset);
	return -AR_ECORRUPT;
}

/* pread exactly len bytes; a short read means the file is shorter than it says. */
static int reader_read(struct lyr_reader *r, void *buf, size_t len, uint64_t offset)
{
	int64_t n = ar_vfs_pread(r->vfs, r->fd, buf, len, offset);
	if (n < 0)
		return (int)n;
	if ((size_t)n != len)
		return reader_corrupt(r, offset, "file ends %zu bytes early", len - (size_t)n);
	return 0;
}

static int reader_header_check(struct lyr_reader *r, const uint8_t *h, uint64_t size)
{
	struct lyr_info *i = &r->info;

	if (ar_get_be32(h) != LYR_MAGIC)
		return reader_corrupt(r, 0, "not a layer file (bad magic)");
	if (ar_get_be32(h + LYR_HEADER_BYTES - 4) != ar_crc32c(h, LYR_HEADER_BYTES - 4))
		return reader_corrupt(r, 0, "header checksum mismatch");
	if (ar_get_be16(h + 4) != LYR_FORMAT_VERSION)
		return reader_corrupt(r, 4, "unsupported format version %u", ar_get_be16(h + 4));
	i->kind = (enum lyr_kind)h[6];
	ar_key_decode(h + 8, &i->keys.start);
	ar_key_decode(h + 26, &i->keys.end);
	i->lsn_start = ar_get_be64(h + 48);
	i->lsn_end = ar_get_be64(h + 56);
	i->value_count = ar_get_be64(h + 64);
	r->data_end = ar_get_be64(h + 72);
	r->root = ar_get_be64(h + 80);
	i->index_levels = ar_get_be32(h + 88);
	i->index_node_bytes = ar_get_be32(h + 92);
	r->leaves = ar_get_be64(h + 96);
	i->file_bytes = ar_get_be64(h + 104);
	uint32_t nb = i->index_node_bytes;
	if ((i->kind != LYR_DELTA && i->kind != LYR_IMAGE) ||
	    ar_key_cmp(&i->keys.start, &i->keys.end) >= 0 || i->lsn_start >= i->lsn_end ||
	    (i->kind == LYR_IMAGE && i->lsn_end != i->lsn_start + 1))
		return reader_corrupt(r, 6, "inconsistent kind, key range or LSN range");
	if (nb < LYR_NODE_BYTES_MIN || nb > LYR_NODE_BYTES_MAX || (nb & (nb - 1)) != 0 ||
	    i->index_levels > LYR_INDEX_LEVELS_MAX)
		return reader_corrupt(r, 88, "bad index geometry");
	if (i->file_bytes != size)
		return reader_corrupt(r, 104, "header says %" PRIu64 " bytes, file has %" PRIu64,
				      i->file_bytes, size);
	if (r->data_end < LYR_HEADER_BYTES || r->data_end > size ||
	    (size - r->data_end) / nb < r->leaves)
		return reader_corrupt(r, 72, "data or index outside the file");
	bool empty = i->value_count == 0;
	if (empty != (i->index_levels == 0) || empty != (r->leaves == 0))
		return reader_corrupt(r, 64, "value count and index disagree");
	if (!empty &&
	    (r->root < r->data_end || r->root > size - nb || (r->root - r->data_end) % nb != 0))
		return reader_corrupt(r, 80, "index root outside the index");
	return 0;
}

int lyr_reader_open(struct ar_vfs *vfs, struct ar_blockcache *cache, const char *path,
		    uint64_t file_id, struct lyr_reader **reader_out, char err[LYR_ERROR_BYTES])
{
	struct lyr_reader *r = calloc(1, sizeof(*r));
	uint8_t *h = malloc(LYR_HEADER_BYTES);
	uint64_t size = 0;
	int rc = r && h ? 0 : -ENOMEM;

	err[0] = '\0';
	if (rc == 0) {
		r->vfs = vfs;
		r->cache = cache;
		r->file_id = file_id;
		r->fd = -1;
		r->path = strdup(path);
		r->zstd = ZSTD_createDCtx();
		rc = r->path && r->zstd ? 0 : -ENOMEM;
	}
	if (rc == 0)
		rc = ar_vfs_open(vfs, path, AR_VFS_READ, &r->fd);
	if (rc == 0)
		rc = ar_vfs_size(vfs, r->fd, &size);
	if (rc == 0 && size < LYR_HEADER_BYTES)
		rc = reader_corrupt(r, 0, "file of %" PRIu64 " bytes is shorter than a header",
				    size);
	if (rc == 0)
		rc = reader_read(r, h, LYR_HEADER_BYTES, 0);
	if (rc == 0)
		rc = reader_header_check(r, h, size);
	if (rc == 0) {
		r->node = malloc(r->info.index_node_bytes);
		r->leaf = malloc(r->info.index_node_bytes);
		rc = r->node && r->leaf ? 0 : -ENOMEM;
	}
	free(h);
	if (rc < 0) {
		if (r)
			snprintf(err, LYR_ERROR_BYTES, "%s", r->err);
		lyr_reader_close(r);
		return rc;
	}
	*reader_out = r;
	return 0;
}

void lyr_reader_close(struct lyr_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		ar_vfs_close(r->vfs, r->fd);
	ZSTD_freeDCtx(r->zstd);
	free(r->path);
	free(r->node);
	free(r->leaf);
	free(r->io);
	free(r->raw);
	free(r);
}

const struct lyr_info *lyr_reader_info(const struct lyr_reader *r)
{
	return &r->info;
}

const char *lyr_reader_error(const struct lyr_reader *r)
{
	return r->err;
}

static uint32_t node_capacity(const struct lyr_reader *r, uint8_t level)
{
	uint32_t entry = level == 0 ? LYR_LEAF_ENTRY_BYTES : LYR_INNER_ENTRY_BYTES;
	return (r->info.index_node_bytes - LYR_NODE_HEADER_BYTES) / entry;
}

/* Read and verify the node at offset into out (a reader-owned copy). */
static int reader_node(struct lyr_reader *r, uint64_t offset, uint8_t level, uint8_t *out)
{
	uint32_t nb = r->info.index_node_bytes, len;
	const uint8_t *cached;

	if (offset < r->data_end || offset > r->info.file_bytes - nb ||
	    (offset - r->data_end) % nb != 0)
		return reader_corrupt(r, offset, "index pointer outside the index");
	cached = ar_blockcache_get(r->cache, r->file_id, offset, &len);
	if (cached && len == nb) {
		memcpy(out, cached, nb);
	} else {
		int rc = reader_read(r, out, nb, offset);
		if (rc < 0)
			return rc;
		uint32_t crc = ar_get_be32(out + 8);
		ar_put_be32(out + 8, 0);
		bool ok = crc == ar_crc32c(out, nb);
		ar_put_be32(out + 8, crc);
		if (!ok)
			return reader_corrupt(r, offset, "index node checksum mismatch");
		rc = ar_blockcache_put(r->cache, r->file_id, offset, out, nb);
		if (rc < 0)
			return rc;
	}
	if (ar_get_be16(out) != LYR_NODE_MAGIC || out[2] != level || ar_get_be16(out + 4) == 0 ||
	    ar_get_be16(out + 4) > node_capacity(r, level))
		return reader_corrupt(r, offset, "bad index node (level %u expected)", level);
	return 0;
}

/* Compare an entry's (key, lsn) with a target. */
static int entry_cmp(const uint8_t *entry, const uint8_t key[AR_KEY_BYTES], ar_lsn lsn)
{
	int c = memcmp(entry, key, AR_KEY_BYTES);
	if (c != 0)
		return c;
	ar_lsn e = ar_get_be64(entry + AR_KEY_BYTES);
	return e < lsn ? -1 : e > lsn ? 1 : 0;
}

struct cursor {
	uint64_t leaf_offset;
	uint32_t pos;
	uint32_t count;
	uint8_t *leaf; /* the leaf being walked: the reader's, or a pull cursor's own */
};

/* Position c at the first entry >= (key, lsn); c->pos == c->count means past the end. */
static int reader_seek(struct lyr_reader *r, const uint8_t key[AR_KEY_BYTES], ar_lsn lsn,
		       struct cursor *c)
{
	uint64_t offset = r->root;
	int rc;

	for (uint32_t level = r->info.index_levels - 1; level > 0; level--) {
		rc = reader_node(r, offset, (uint8_t)level, r->node);
		if (rc < 0)
			return rc;
		uint32_t lo = 0, hi = ar_get_be16(r->node + 4); /* last entry <= target */
		while (hi - lo > 1) {
			uint32_t mid = (lo + hi) / 2;
			const uint8_t *e =
			    r->node + LYR_NODE_HEADER_BYTES + mid * LYR_INNER_ENTRY_BYTES;
			if (entry_cmp(e, key, lsn) <= 0)
				lo = mid;
			else
				hi = mid;
		}
		offset =
		    ar_get_be64(r->node + LYR_NODE_HEADER_BYTES + lo * LYR_INNER_ENTRY_BYTES + 26);
	}
	rc = reader_node(r, offset, 0, r->leaf);
	if (rc < 0)
		return rc;
	c->leaf = r->leaf;
	c->leaf_offset = offset;
	c->count = ar_get_be16(r->leaf + 4);
	uint32_t lo = 0, hi = c->count; /* first entry >= target */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (entry_cmp(c->leaf + LYR_NODE_HEADER_BYTES + mid * LYR_LEAF_ENTRY_BYTES, key,
			      lsn) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	c->pos = lo;
	return 0;
}

/* The entry under the cursor, moving to the next leaf when one is used up;
 * NULL at the end of the index. */
static int reader_entry(struct lyr_reader *r, struct cursor *c, const uint8_t **entry_out)
{
	uint64_t leaves_end = r->data_end + r->leaves * r->info.index_node_bytes;

	while (c->pos >= c->count) {
		uint64_t next = c->leaf_offset + r->info.index_node_bytes;
		if (next >= leaves_end) {
			*entry_out = NULL;
			return 0;
		}
		int rc = reader_node(r, next, 0, c->leaf);
		if (rc < 0)
			return rc;
		c->leaf_offset = next;
		c->count = ar_get_be16(c->leaf + 4);
		c->pos = 0;
	}
	*entry_out = c->leaf + LYR_NODE_HEADER_BYTES + c->pos * LYR_LEAF_ENTRY_BYTES;
	return 0;
}

static int reader_grow(uint8_t **buf, size_t *cap, size_t need)
{
	return grow((void **)buf, cap, need, 1);
}

/* Verify and decompress the block read at offset (io: its stored bytes) into
 * r->raw, and cache it. */
static int reader_block_decode(struct lyr_reader *r, uint64_t offset, uint32_t bytes,
			       const uint8_t *io, const uint8_t **raw_out, uint32_t *raw_len_out)
{
	const uint8_t *h = io, *payload = io + LYR_BLOCK_HEADER_BYTES;
	uint32_t raw_len = ar_get_be32(h + 8), stored = ar_get_be32(h + 12);
	if (ar_get_be32(h) != LYR_BLOCK_MAGIC || h[4] > CODEC_ZSTD ||
	    raw_len > LYR_BLOCK_RAW_BYTES_MAX || stored != bytes - LYR_BLOCK_HEADER_BYTES)
		return reader_corrupt(r, offset, "bad value block header");
	if (ar_get_be32(h + 16) != ar_crc32c(payload, stored))
		return reader_corrupt(r, offset, "value block checksum mismatch");
	int rc = reader_grow(&r->raw, &r->raw_cap, raw_len ? raw_len : 1);
	if (rc < 0)
		return rc;
	if (h[4] == CODEC_PLAIN) {
		if (stored != raw_len)
			return reader_corrupt(r, offset, "plain block length mismatch");
		memcpy(r->raw, payload, raw_len);
	} else {
		size_t n = ZSTD_decompressDCtx(r->zstd, r->raw, raw_len, payload, stored);
		if (ZSTD_isError(n) || n != raw_len)
			return reader_corrupt(r, offset, "value block does not decompress");
	}
	rc = ar_blockcache_put(r->cache, r->file_id, offset, r->raw, raw_len);
	*raw_out = r->raw;
	*raw_len_out = raw_len;
	return rc;
}

static bool reader_block_in_data(const struct lyr_reader *r, uint64_t offset, uint32_t bytes)
{
	return offset >= LYR_HEADER_BYTES && bytes >= LYR_BLOCK_HEADER_BYTES &&
	       offset <= r->data_end && bytes <= r->data_end - offset;
}

/* The raw (decompressed, verified) bytes of the block at offset. */
static int reader_block(struct lyr_reader *r, uint64_t offset, uint32_t bytes,
			const uint8_t **raw_out, uint32_t *raw_len_out)
{
	const uint8_t *cached = ar_blockcache_get(r->cache, r->file_id, offset, raw_len_out);
	if (cached) {
		*raw_out = cached;
		return 0;
	}
	if (!reader_block_in_data(r, offset, bytes))
		return reader_corrupt(r, offset, "value block outside the data area");
	int rc = reader_grow(&r->io, &r->io_cap, bytes);
	if (rc == 0)
		rc = reader_read(r, r->io, bytes, offset);
	if (rc < 0)
		return rc;
	return reader_block_decode(r, offset, bytes, r->io, raw_out, raw_len_out);
}

/* Load the value an index entry points at and check it is the one named. */
static int reader_value(struct lyr_reader *r, const uint8_t *entry, struct ar_key *key_out,
			ar_lsn *lsn_out, struct ar_value *value_out)
{
	uint64_t block = ar_get_be64(entry + 26);
	uint32_t off = ar_get_be32(entry + 38);
	const uint8_t *raw = NULL;
	uint32_t raw_len = 0;
	size_t used;

	int rc = reader_block(r, block, ar_get_be32(entry + 34), &raw, &raw_len);
	if (rc < 0)
		return rc;
	if (off > raw_len || raw_len - off < LYR_RECORD_HEADER_BYTES)
		return reader_corrupt(r, block, "value offset %u outside its block", off);
	if (memcmp(raw + off, entry, AR_KEY_BYTES + 8) != 0)
		return reader_corrupt(r, block, "index entry points at another value (offset %u)",
				      off);
	if (ar_value_decode(raw + off + LYR_RECORD_HEADER_BYTES,
			    raw_len - off - LYR_RECORD_HEADER_BYTES, value_out, &used) < 0)
		return reader_corrupt(r, block, "malformed value at offset %u", off);
	ar_key_decode(entry, key_out);
	*lsn_out = ar_get_be64(entry + AR_KEY_BYTES);
	return 0;
}

/* Walk entries from the cursor while (key matches, if given) and lsn < lsn_below. */
static int reader_walk(struct lyr_reader *r, struct cursor *c, const uint8_t *key, ar_lsn lsn_below,
		       bool values, lyr_value_fn *fn, void *ctx)
{
	uint8_t prev[AR_KEY_BYTES + 8];
	bool have_prev = false;

	for (uint64_t n = 0; n < r->info.value_count; n++) {
		const uint8_t *e;
		int rc = reader_entry(r, c, &e);
		if (rc < 0 || !e)
			return rc;
		if (key && memcmp(e, key, AR_KEY_BYTES) != 0)
			return 0;
		if (ar_get_be64(e + AR_KEY_BYTES) >= lsn_below) {
			if (key)
				return 0;
		} else {
			if (have_prev && memcmp(prev, e, sizeof(prev)) >= 0)
				return reader_corrupt(r, c->leaf_offset,
						      "index entries out of order");
			memcpy(prev, e, sizeof(prev));
			have_prev = true;
			struct ar_key k;
			ar_lsn lsn = ar_get_be64(e + AR_KEY_BYTES);
			struct ar_value v;
			ar_key_decode(e, &k);
			rc = values ? reader_value(r, e, &k, &lsn, &v) : 0;
			if (rc == 0)
				rc = fn(ctx, &k, lsn, values ? &v : NULL);
			if (rc != 0)
				return rc;
		}
		c->pos++;
	}
	return 0;
}

int lyr_reader_get(struct lyr_reader *r, const struct ar_key *key, ar_lsn lsn_below,
		   lyr_value_fn *fn, void *ctx)
{
	uint8_t kb[AR_KEY_BYTES];
	struct cursor c;

	if (r->info.value_count == 0 || !ar_key_range_contains(&r->info.keys, key))
		return 0;
	ar_key_encode(key, kb);
	int rc = reader_seek(r, kb, 0, &c);
	if (rc < 0)
		return rc;
	return reader_walk(r, &c, kb, lsn_below, true, fn, ctx);
}

/* Entries of key below lsn_below in this layer walked at most: a prefetch
 * bound, not a limit on the data (the ordinary read walks them all). */
enum { LOCATE_ENTRIES_MAX = 256 };

int lyr_reader_locate(struct lyr_reader *r, const struct ar_key *key, ar_lsn lsn_below,
		      struct lyr_block_ref *refs, uint32_t max, uint32_t *count_out)
{
	uint8_t kb[AR_KEY_BYTES];
	struct cursor c;
	uint32_t n = 0;

	*count_out = 0;
	if (r->info.value_count == 0 || !ar_key_range_contains(&r->info.keys, key) || max == 0)
		return 0;
	ar_key_encode(key, kb);
	int rc = reader_seek(r, kb, 0, &c);
	/* Oldest first in the index: the newest value's block ends up in refs[0]. */
	for (uint32_t walked = 0; rc == 0 && walked < LOCATE_ENTRIES_MAX; walked++) {
		const uint8_t *e;
		rc = reader_entry(r, &c, &e);
		if (rc < 0 || !e || memcmp(e, kb, AR_KEY_BYTES) != 0 ||
		    ar_get_be64(e + AR_KEY_BYTES) >= lsn_below)
			break;
		uint64_t block = ar_get_be64(e + 26);
		if (n == 0 || refs[0].offset != block) {
			uint32_t keep = n < max ? n : max - 1;
			memmove(refs + 1, refs, keep * sizeof(*refs));
			refs[0] = (struct lyr_block_ref){ .reader = r,
							  .offset = block,
							  .bytes = ar_get_be32(e + 34) };
			n = keep + 1;
		}
		c.pos++;
	}
	*count_out = n;
	return rc < 0 ? rc : 0;
}

/* One batch: read what is not cached (and not named twice), then decode it. */
static bool load_batch(struct ar_vfs *vfs, const struct lyr_block_ref *refs, uint32_t n,
		       uint32_t *read_out)
{
	struct ar_vfs_read q[AR_VFS_BATCH_MAX];
	const struct lyr_block_ref *of[AR_VFS_BATCH_MAX];
	uint32_t m = 0, len;
	size_t total = 0;

	for (uint32_t i = 0; i < n; i++) {
		struct lyr_reader *r = refs[i].reader;
		bool dup = false;
		for (uint32_t j = 0; j < m && !dup; j++)
			dup =
			    of[j]->reader->file_id == r->file_id && of[j]->offset == refs[i].offset;
		if (dup || !reader_block_in_data(r, refs[i].offset, refs[i].bytes) ||
		    ar_blockcache_get(r->cache, r->file_id, refs[i].offset, &len))
			continue;
		of[m++] = &refs[i];
		total += refs[i].bytes;
	}
	uint8_t *io = m > 0 ? malloc(total) : NULL; /* one buffer for the whole batch */
	if (!io)
		return false;
	total = 0;
	for (uint32_t j = 0; j < m; j++) {
		q[j] = (struct ar_vfs_read){ .fd = of[j]->reader->fd,
					     .len = of[j]->bytes,
					     .buf = io + total,
					     .offset = of[j]->offset };
		total += of[j]->bytes;
	}
	if (ar_vfs_read_batch(vfs, q, m) == 0) {
		for (uint32_t j = 0; j < m; j++) {
			const uint8_t *raw;
			if (q[j].result == (int64_t)q[j].len &&
			    reader_block_decode(of[j]->reader, of[j]->offset, q[j].len, q[j].buf,
						&raw, &len) == 0)
				(*read_out)++;
		}
	}
	free(io);
	return true;
}

void lyr_load_blocks(struct ar_vfs *vfs, const struct lyr_block_ref *refs, uint32_t n,
		     uint32_t *read_out, uint32_t *batches_out)
{
	*read_out = *batches_out = 0;
	for (uint32_t i = 0; i < n; i += AR_VFS_BATCH_MAX) {
		uint32_t m = n - i < AR_VFS_BATCH_MAX ? n - i : AR_VFS_BATCH_MAX;
		if (load_batch(vfs, refs + i, m, read_out))
			(*batches_out)++;
	}
}

static int reader_scan(struct lyr_reader *r, bool values, lyr_value_fn *fn, void *ctx)
{
	struct cursor c = { .leaf_offset = r->data_end, .pos = 0, .count = 0, .leaf = r->leaf };

	if (r->info.value_count == 0)
		return 0;
	int rc = reader_node(r, r->data_end, 0, r->leaf);
	if (rc < 0)
		return rc;
	c.count = ar_get_be16(r->leaf + 4);
	return reader_walk(r, &c, NULL, AR_LSN_MAX, values, fn, ctx);
}

int lyr_reader_scan(struct lyr_reader *r, lyr_value_fn *fn, void *ctx)
{
	return reader_scan(r, true, fn, ctx);
}

int lyr_reader_scan_keys(struct lyr_reader *r, lyr_value_fn *fn, void *ctx)
{
	return reader_scan(r, false, fn, ctx);
}

/* ---- pull cursor (k-way merges) ---- */

struct lyr_cursor {
	struct lyr_reader *r;
	struct cursor c;
	uint64_t seen;
	uint8_t prev[AR_KEY_BYTES + 8];
	uint8_t *value; /* a copy: the block cache is shared with other cursors */
	size_t value_cap;
};

int lyr_cursor_open(struct lyr_reader *r, struct lyr_cursor **out)
{
	struct lyr_cursor *cur = calloc(1, sizeof(*cur));
	if (!cur)
		return -ENOMEM;
	cur->r = r;
	cur->c.leaf_offset = r->data_end;
	/* Its own leaf: lookups on the same reader may run between its steps. */
	cur->c.leaf = malloc(r->info.index_node_bytes);
	int rc = cur->c.leaf ? 0 : -ENOMEM;
	if (rc == 0 && r->info.value_count > 0) {
		rc = reader_node(r, r->data_end, 0, cur->c.leaf);
		cur->c.count = rc == 0 ? ar_get_be16(cur->c.leaf + 4) : 0;
	}
	if (rc < 0) {
		free(cur->c.leaf);
		free(cur);
		return rc;
	}
	*out = cur;
	return 0;
}

int lyr_cursor_next(struct lyr_cursor *cur, struct ar_key *key, ar_lsn *lsn, struct ar_value *value)
{
	struct lyr_reader *r = cur->r;
	const uint8_t *e;

	if (cur->seen == r->info.value_count)
		return 0;
	int rc = reader_entry(r, &cur->c, &e);
	if (rc < 0)
		return rc;
	if (!e)
		return reader_corrupt(r, cur->c.leaf_offset, "index ends before its value count");
	if (cur->seen > 0 && memcmp(cur->prev, e, sizeof(cur->prev)) >= 0)
		return reader_corrupt(r, cur->c.leaf_offset, "index entries out of order");
	memcpy(cur->prev, e, sizeof(cur->prev));
	rc = reader_value(r, e, key, lsn, value);
	if (rc < 0)
		return rc;
	if (value->len > cur->value_cap) {
		rc = reader_grow(&cur->value, &cur->value_cap, value->len);
		if (rc < 0)
			return rc;
	}
	memcpy(cur->value, value->data, value->len);
	value->data = cur->value;
	cur->c.pos++;
	cur->seen++;
	return 1;
}

void lyr_cursor_close(struct lyr_cursor *cur)
{
	if (!cur)
		return;
	free(cur->c.leaf);
	free(cur->value);
	free(cur);
}

void lyr_writer_set_key_end(struct lyr_writer *w, const struct ar_key *end)
{
	uint8_t eb[AR_KEY_BYTES];
	ar_key_encode(end, eb);
	AR_ASSERT(ar_key_cmp(&w->info.keys.start, end) < 0);
	AR_ASSERT(w->entry_count == 0 || memcmp(w->last_key, eb, AR_KEY_BYTES) < 0);
	w->info.keys.end = *end;
}
