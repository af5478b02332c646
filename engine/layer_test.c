/*
 * layer_test.c - Layer files: delta and image round trips (every value back,
 * in order, by key and below an LSN), an index at least 3 levels deep, empty
 * layers, names; and bad files: every corrupted byte either changes nothing or
 * is reported as corruption naming the file and offset (never a wrong value),
 * a truncated file is refused, and an index entry pointing at another value
 * (with a valid node checksum) is caught.
 */
#include "common/crc32c.h"
#include "common/err.h"
#include "common/vfs.h"
#include "engine/layer.h"
#include "engine/manifest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

struct version {
	struct ar_key key;
	ar_lsn lsn;
	struct ar_value value;
	uint8_t bytes[256];
};

static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* count versions over key_count keys, several LSNs each, in (key, lsn) order. */
static struct version *make_versions(size_t key_count, size_t per_key, uint64_t seed)
{
	struct version *v = calloc(key_count * per_key, sizeof(*v));
	uint64_t s = seed;
	for (size_t k = 0; k < key_count; k++) {
		struct ar_rel rel = { 1663, 5, 16384 + (uint32_t)(k / 1000), AR_FORK_MAIN };
		for (size_t j = 0; j < per_key; j++) {
			struct version *x = &v[k * per_key + j];
			x->key = ar_key_rel_block(rel, (uint32_t)(k % 1000) * 3);
			x->lsn = 0x1000 + j * 0x100 + (next_rand(&s) & 0x7F);
			uint32_t len = 1 + (uint32_t)(next_rand(&s) % sizeof(x->bytes));
			for (uint32_t b = 0; b < len; b++)
				x->bytes[b] =
				    (uint8_t)(next_rand(&s) >> 17 & (b % 3 ? 0xFF : 0x0F));
			x->value =
			    (struct ar_value){ .kind = (enum ar_value_kind)(next_rand(&s) % 3),
					       .len = len,
					       .data = x->bytes };
			x->value.will_init = x->value.kind == AR_VALUE_WAL && (s & 1);
			x->value.argon_type = x->value.kind == AR_VALUE_ARGON ? 7 : 0;
		}
	}
	return v;
}

static struct ar_vfs *new_vfs(void)
{
	struct ar_vfs *vfs;
	assert_int_equal(ar_vfs_sim_create(1, &vfs), 0);
	assert_int_equal(ar_vfs_mkdir(vfs, "/l"), 0);
	return vfs;
}

static struct lyr_info write_layer(struct ar_vfs *vfs, const char *path, enum lyr_kind kind,
				   const struct version *v, size_t n, uint32_t node_bytes)
{
	struct lyr_info info = { .kind = kind,
				 .keys = { ar_key_min(), ar_key_max() },
				 .lsn_start = kind == LYR_IMAGE ? 0x5000 : 0x1000,
				 .lsn_end = kind == LYR_IMAGE ? 0x5001 : 0x9000 };
	struct lyr_writer_options opt = { .block_target_bytes = 2048,
					  .index_node_bytes = node_bytes };
	struct lyr_writer *w;
	assert_int_equal(lyr_writer_create(vfs, path, &info, &opt, &w), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(lyr_writer_append(w, &v[i].key,
						   kind == LYR_IMAGE ? 0x5000 : v[i].lsn,
						   &v[i].value),
				 0);
	struct lyr_info out;
	assert_int_equal(lyr_writer_finish(w, &out), 0);
	return out;
}

struct collect {
	size_t count;
	struct ar_key keys[64];
	ar_lsn lsns[64];
	struct ar_value values[64];
	uint8_t data[64][256];
	uint64_t checksum; /* over everything seen, for scans */
};

static int collect_fn(void *ctx, const struct ar_key *key, ar_lsn lsn, const struct ar_value *v)
{
	struct collect *c = ctx;
	uint8_t kb[AR_KEY_BYTES];
	ar_key_encode(key, kb);
	c->checksum = c->checksum * 31 + ar_crc32c(kb, sizeof(kb)) + lsn * 7 +
		      ar_crc32c(v->data, v->len) + (uint64_t)v->kind * 3 + v->will_init;
	if (c->count < 64) {
		c->keys[c->count] = *key;
		c->lsns[c->count] = lsn;
		c->values[c->count] = *v;
		memcpy(c->data[c->count], v->data, v->len < 256 ? v->len : 256);
	}
	c->count++;
	return 0;
}

static void assert_same_value(const struct ar_value *a, const uint8_t *a_data,
			      const struct ar_value *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->will_init, b->will_init);
	assert_int_equal(a->argon_type, b->argon_type);
	assert_int_equal(a->len, b->len);
	assert_memory_equal(a_data, b->data, a->len);
}

static void test_delta_round_trip_deep_index(void **state)
{
	enum { KEYS = 3000, PER_KEY = 4 };
	struct ar_vfs *vfs = new_vfs();
	struct ar_blockcache *cache;
	struct lyr_reader *r;
	char err[LYR_ERROR_BYTES];
	(void)state;

	struct version *v = make_versions(KEYS, PER_KEY, 7);
	struct lyr_info info = write_layer(vfs, "/l/d", LYR_DELTA, v, KEYS * PER_KEY, 512);
	assert_int_equal(info.value_count, KEYS * PER_KEY);
	assert_true(info.index_levels >= 3); /* 512-byte nodes: 11 leaf entries, 14 inner */
	assert_int_equal(ar_blockcache_create(1 << 20, &cache), 0);
	assert_int_equal(lyr_reader_open(vfs, cache, "/l/d", 1, &r, err), 0);
	assert_int_equal(lyr_reader_info(r)->index_levels, info.index_levels);

	for (size_t k = 0; k < KEYS; k += 7) {
		const struct version *kv = &v[k * PER_KEY];
		/* Below each version's LSN + 1: exactly the versions up to it, oldest first. */
		for (size_t j = 0; j < PER_KEY; j++) {
			struct collect c = { 0 };
			assert_int_equal(
			    lyr_reader_get(r, &kv[j].key, kv[j].lsn + 1, collect_fn, &c), 0);
			assert_int_equal(c.count, j + 1);
			for (size_t i = 0; i <= j; i++) {
				assert_int_equal(c.lsns[i], kv[i].lsn);
				assert_same_value(&kv[i].value, kv[i].bytes, &c.values[i]);
				assert_memory_equal(c.data[i], kv[i].bytes, kv[i].value.len);
			}
		}
		struct collect none = { 0 };
		assert_int_equal(lyr_reader_get(r, &kv[0].key, kv[0].lsn, collect_fn, &none), 0);
		assert_int_equal(none.count, 0);
		/* A key between two stored keys has no versions. */
		struct ar_key gap = kv[0].key;
		gap.f6 += 1;
		assert_int_equal(lyr_reader_get(r, &gap, AR_LSN_MAX, collect_fn, &none), 0);
		assert_int_equal(none.count, 0);
	}
	struct collect all = { 0 }, expect = { 0 };
	assert_int_equal(lyr_reader_scan(r, collect_fn, &all), 0);
	for (size_t i = 0; i < KEYS * PER_KEY; i++)
		collect_fn(&expect, &v[i].key, v[i].lsn, &v[i].value);
	assert_int_equal(all.count, KEYS * PER_KEY);
	assert_int_equal(all.checksum, expect.checksum);
	struct ar_blockcache_stats st;
	ar_blockcache_stats_read(cache, &st);
	assert_true(st.hits > 0);
	lyr_reader_close(r);
	ar_blockcache_destroy(cache);
	free(v);
	ar_vfs_destroy(vfs);
}

static void test_image_and_empty_and_names(void **state)
{
	struct ar_vfs *vfs = new_vfs();
	struct ar_blockcache *cache;
	struct lyr_reader *r;
	char err[LYR_ERROR_BYTES], name[LYR_NAME_BYTES];
	(void)state;

	struct version *v = make_versions(500, 1, 9);
	struct lyr_info info = write_layer(vfs, "/l/i", LYR_IMAGE, v, 500, 0);
	assert_int_equal(info.index_levels, 1 + (500 > 97)); /* 4 KiB nodes hold 97 leaf entries */
	assert_int_equal(ar_blockcache_create(1 << 20, &cache), 0);
	assert_int_equal(lyr_reader_open(vfs, cache, "/l/i", 2, &r, err), 0);
	struct collect c = { 0 };
	assert_int_equal(lyr_reader_get(r, &v[123].key, 0x5001, collect_fn, &c), 0);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.lsns[0], 0x5000);
	assert_same_value(&v[123].value, v[123].bytes, &c.values[0]);
	lyr_reader_close(r);

	info = write_layer(vfs, "/l/e", LYR_DELTA, v, 0, 0);
	assert_int_equal(info.value_count, 0);
	assert_int_equal(info.index_levels, 0);
	assert_int_equal(lyr_reader_open(vfs, cache, "/l/e", 3, &r, err), 0);
	c.count = 0;
	assert_int_equal(lyr_reader_get(r, &v[0].key, AR_LSN_MAX, collect_fn, &c), 0);
	assert_int_equal(lyr_reader_scan(r, collect_fn, &c), 0);
	assert_int_equal(c.count, 0);
	lyr_reader_close(r);

	struct lyr_info parsed;
	info.keys.start = v[3].key;
	lyr_name(&info, name);
	assert_true(lyr_name_parse(name, &parsed));
	assert_int_equal(parsed.kind, LYR_DELTA);
	assert_int_equal(ar_key_cmp(&parsed.keys.start, &v[3].key), 0);
	assert_int_equal(parsed.lsn_start, 0x1000);
	assert_int_equal(parsed.lsn_end, 0x9000);
	info.kind = LYR_IMAGE;
	info.lsn_start = 0xABCDEF;
	lyr_name(&info, name);
	assert_true(lyr_name_parse(name, &parsed));
	assert_int_equal(parsed.kind, LYR_IMAGE);
	assert_int_equal(parsed.lsn_end, 0xABCDF0);
	assert_false(lyr_name_parse("manifest", &parsed));
	name[10] = 'x';
	assert_false(lyr_name_parse(name, &parsed));
	ar_blockcache_destroy(cache);
	free(v);
	ar_vfs_destroy(vfs);
}

static uint8_t *read_file(struct ar_vfs *vfs, const char *path, uint64_t *size)
{
	int fd;
	assert_int_equal(ar_vfs_open(vfs, path, AR_VFS_READ, &fd), 0);
	assert_int_equal(ar_vfs_size(vfs, fd, size), 0);
	uint8_t *b = malloc(*size);
	assert_int_equal(ar_vfs_pread(vfs, fd, b, *size, 0), (int64_t)*size);
	ar_vfs_close(vfs, fd);
	return b;
}

static void write_file(struct ar_vfs *vfs, const char *path, const uint8_t *b, uint64_t size)
{
	int fd;
	assert_int_equal(ar_vfs_open(vfs, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &fd),
			 0);
	assert_int_equal(ar_vfs_pwrite(vfs, fd, b, size, 0), (int64_t)size);
	ar_vfs_close(vfs, fd);
}

/* Open, get every key, scan: 0 and the checksum of what was seen, or the error. */
static int read_everything(struct ar_vfs *vfs, const char *path, const struct version *v, size_t n,
			   uint64_t *checksum, char err[LYR_ERROR_BYTES])
{
	struct ar_blockcache *cache;
	struct lyr_reader *r = NULL;
	struct collect c = { 0 };
	assert_int_equal(ar_blockcache_create(1 << 20, &cache), 0);
	int rc = lyr_reader_open(vfs, cache, path, 9, &r, err);
	if (rc < 0) {
		ar_blockcache_destroy(cache);
		return rc;
	}
	for (size_t i = 0; rc == 0 && i < n; i += 5)
		rc = lyr_reader_get(r, &v[i].key, AR_LSN_MAX, collect_fn, &c);
	if (rc == 0)
		rc = lyr_reader_scan(r, collect_fn, &c);
	if (rc < 0)
		snprintf(err, LYR_ERROR_BYTES, "%s",
			 rc == -AR_ECORRUPT ? lyr_reader_error(r) : "io");
	lyr_reader_close(r);
	ar_blockcache_destroy(cache);
	*checksum = c.checksum;
	return rc;
}

static void test_corruption_never_gives_a_wrong_value(void **state)
{
	struct ar_vfs *vfs = new_vfs();
	char err[LYR_ERROR_BYTES];
	uint64_t size, good_sum, sum, s = 99;
	(void)state;

	struct version *v = make_versions(400, 3, 11);
	write_layer(vfs, "/l/good", LYR_DELTA, v, 1200, 512);
	uint8_t *good = read_file(vfs, "/l/good", &size);
	assert_int_equal(read_everything(vfs, "/l/good", v, 1200, &good_sum, err), 0);
	size_t detected = 0, harmless = 0;
	for (int trial = 0; trial < 600; trial++) {
		uint8_t *bad = malloc(size);
		memcpy(bad, good, size);
		uint64_t pos =
		    trial < 100 ? next_rand(&s) % LYR_HEADER_BYTES : next_rand(&s) % size;
		bad[pos] ^= (uint8_t)(1u << (next_rand(&s) % 8));
		write_file(vfs, "/l/bad", bad, size);
		err[0] = '\0';
		int rc = read_everything(vfs, "/l/bad", v, 1200, &sum, err);
		if (rc == 0) {
			assert_int_equal(sum, good_sum); /* a flip that mattered must not pass */
			harmless++;
		} else {
			assert_int_equal(rc, -AR_ECORRUPT);
			assert_non_null(strstr(err, "\"/l/bad\""));
			assert_non_null(strstr(err, "at offset"));
			detected++;
		}
		free(bad);
	}
	print_message("corruption: %zu detected, %zu harmless (padding)\n", detected, harmless);
	assert_true(detected > 500);

	/* Every truncation is refused at open. */
	for (uint64_t len = 0; len < size; len += size / 37 + 1) {
		write_file(vfs, "/l/short", good, len);
		assert_int_equal(read_everything(vfs, "/l/short", v, 1200, &sum, err),
				 -AR_ECORRUPT);
	}
	free(good);
	free(v);
	ar_vfs_destroy(vfs);
}

static void test_misdirected_index_entry(void **state)
{
	struct ar_vfs *vfs = new_vfs();
	char err[LYR_ERROR_BYTES];
	uint64_t size, sum;
	(void)state;

	struct version *v = make_versions(50, 1, 5); /* 50 entries: one leaf, the root */
	write_layer(vfs, "/l/m", LYR_DELTA, v, 50, 4096);
	uint8_t *b = read_file(vfs, "/l/m", &size);
	/* The single leaf is the root; swap the value offsets of its first two entries
	 * and re-seal the node's checksum, as a bug in a writer would. */
	uint64_t root = 0;
	for (int i = 0; i < 8; i++)
		root = root << 8 | b[80 + i];
	uint8_t *node = b + root;
	uint8_t *e0 = node + 12 + 38, *e1 = node + 12 + 42 + 38;
	uint8_t t[4];
	memcpy(t, e0, 4);
	memcpy(e0, e1, 4);
	memcpy(e1, t, 4);
	memset(node + 8, 0, 4);
	uint32_t crc = ar_crc32c(node, 4096);
	node[8] = (uint8_t)(crc >> 24);
	node[9] = (uint8_t)(crc >> 16);
	node[10] = (uint8_t)(crc >> 8);
	node[11] = (uint8_t)crc;
	write_file(vfs, "/l/m", b, size);
	assert_int_equal(read_everything(vfs, "/l/m", v, 50, &sum, err), -AR_ECORRUPT);
	assert_non_null(strstr(err, "points at another value"));
	free(b);
	free(v);
	ar_vfs_destroy(vfs);
}

/* ARGON_WRITE_CORPUS=DIR: write seed inputs for the layer and manifest fuzzers. */
static void dump_corpus(const char *dir)
{
	struct ar_vfs *vfs = new_vfs();
	char path[512];
	uint64_t size;

	struct version *v = make_versions(30, 2, 3);
	write_layer(vfs, "/l/seed", LYR_DELTA, v, 60, 512);
	uint8_t *b = read_file(vfs, "/l/seed", &size);
	snprintf(path, sizeof(path), "%s/layer/delta-30x2", dir);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, size, f), size);
	fclose(f);
	free(b);
	struct manifest_layer layers[2] = {
		{ .info = { .kind = LYR_DELTA,
			    .keys = { ar_key_min(), ar_key_max() },
			    .lsn_start = 0x100,
			    .lsn_end = 0x200 },
		  .seq = 0 },
		{ .info = { .kind = LYR_IMAGE,
			    .keys = { v[0].key, v[9].key },
			    .lsn_start = 0x180,
			    .lsn_end = 0x181 },
		  .level = 1,
		  .seq = 1 },
	};
	struct manifest m = { .start_lsn = 0x100,
			      .disk_consistent_lsn = 0x1FF,
			      .next_seq = 2,
			      .layer_count = 2,
			      .layers = layers,
			      .has_ancestor = true,
			      .ancestor_lsn = 0xF0 };
	uint8_t mb[512];
	manifest_encode(&m, mb);
	snprintf(path, sizeof(path), "%s/manifest/two-layers", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(mb, 1, manifest_encoded_bytes(&m), f), manifest_encoded_bytes(&m));
	fclose(f);
	free(v);
	ar_vfs_destroy(vfs);
}

int main(void)
{
	if (getenv("ARGON_WRITE_CORPUS")) {
		dump_corpus(getenv("ARGON_WRITE_CORPUS"));
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delta_round_trip_deep_index),
		cmocka_unit_test(test_image_and_empty_and_names),
		cmocka_unit_test(test_corruption_never_gives_a_wrong_value),
		cmocka_unit_test(test_misdirected_index_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
