/*
 * engine_bench.c - argon-engine-bench: the engine without the network, on the
 * real disk (io_uring VFS) in a temporary directory.
 *
 *   GetPage@LSN from an image, and with 1, 10, 100 records above it (test redo),
 *   warm (block cache hit) and cold (block cache cleared and the layer files
 *   dropped from the kernel's page cache with POSIX_FADV_DONTNEED), next to a
 *   baseline measured in the same run: one 8 KiB pread through the same VFS;
 *   how a read grows with the number of layers above its base and with branch depth;
 *   layer write (flush) and compaction MB/s next to the same run's sequential
 *   write speed (1 MiB writes + fsync through the same VFS).
 *
 * Figures: p50/p99/p999 per operation and ratios to the baselines.  This is a
 * benchmark, not a test: it asserts nothing about speed.
 */
#include "common/vfs.h"
#include "engine/redo.h"
#include "engine/tenant.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct dist {
	uint64_t p50, p99, p999;
};

static struct dist summarize(uint64_t *ns, size_t n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	return (struct dist){ ns[n / 2], ns[n * 99 / 100], ns[n * 999 / 1000] };
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "argon-engine-bench: %s failed: %d\n", what, rc);
	exit(1);
}

static struct ar_vfs *vfs;
static struct ar_blockcache *cache;
static struct tl_env env;
static struct ar_tenant *tenant;
static char dir[256];

static struct ar_key key_n(uint32_t rel, uint32_t n)
{
	return ar_key_rel_block((struct ar_rel){ 1663, 5, 16384 + rel, 0 }, n);
}

static void put_page(struct ar_timeline *tl, struct ar_key k, ar_lsn lsn, uint64_t seed)
{
	uint8_t page[AR_PAGE_BYTES];
	ar_test_page_make(seed, 0, page);
	/* Half of each page compressible, as real heap pages are about 2:1 (zstd level 1). */
	memset(page + AR_PAGE_BYTES / 2, (int)(seed & 0xFF), AR_PAGE_BYTES / 2);
	struct ar_value v = { .kind = AR_VALUE_IMAGE, .len = AR_PAGE_BYTES, .data = page };
	int rc = tl_put(tl, &k, lsn, &v);
	if (rc < 0)
		die("put", rc);
}

static void put_record(struct ar_timeline *tl, struct ar_key k, ar_lsn lsn)
{
	uint8_t rec[64];
	memset(rec, (int)lsn, sizeof(rec));
	struct ar_value v = { .kind = AR_VALUE_WAL, .len = sizeof(rec), .data = rec };
	int rc = tl_put(tl, &k, lsn, &v);
	if (rc < 0)
		die("put", rc);
}

static void flush(struct ar_timeline *tl)
{
	tl_maybe_freeze(tl, true);
	int rc = tl_flush(tl);
	if (rc < 0)
		die("flush", rc);
}

/* Drop every file under path from the kernel's page cache. */
static void drop_page_cache(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[512];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (e->d_type == DT_DIR) {
			drop_page_cache(p);
			continue;
		}
		int fd = open(p, O_RDONLY);
		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	if (d)
		closedir(d);
}

static struct dist measure_get(struct ar_timeline *tl, struct ar_key k, ar_lsn lsn, size_t iters,
			       bool cold)
{
	uint64_t *ns = malloc(iters * sizeof(*ns));
	uint8_t page[AR_PAGE_BYTES];
	uint32_t len;
	for (size_t i = 0; !cold && i < iters / 10; i++) /* warm-up, not measured */
		if (tl_get(tl, &k, lsn, page, &len) < 0)
			die("get", -1);
	for (size_t i = 0; i < iters; i++) {
		if (cold) {
			ar_blockcache_clear(cache);
			drop_page_cache(dir);
		}
		uint64_t t0 = now_ns();
		int rc = tl_get(tl, &k, lsn, page, &len);
		ns[i] = now_ns() - t0;
		if (rc < 0)
			die("get", rc);
	}
	struct dist d = summarize(ns, iters);
	free(ns);
	return d;
}

static struct dist measure_pread(const char *path, size_t iters, bool cold)
{
	uint64_t *ns = malloc(iters * sizeof(*ns));
	uint8_t page[AR_PAGE_BYTES];
	int fd;
	int rc = ar_vfs_open(vfs, path, AR_VFS_READ, &fd);
	if (rc < 0)
		die("open", rc);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < iters; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint64_t off = (x % 8192) * AR_PAGE_BYTES; /* within the 64 MiB file */
		if (cold)
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		uint64_t t0 = now_ns();
		int64_t n = ar_vfs_pread(vfs, fd, page, sizeof(page), off);
		ns[i] = now_ns() - t0;
		if (n != (int64_t)sizeof(page))
			die("pread", (int)n);
	}
	ar_vfs_close(vfs, fd);
	struct dist d = summarize(ns, iters);
	free(ns);
	return d;
}

/* Sequential write of bytes in 1 MiB writes and one fsync: MB/s. */
static double seq_write_mbps(const char *path, uint64_t bytes)
{
	uint8_t *buf = malloc(1 << 20);
	int fd;
	for (size_t i = 0; i < (1u << 20); i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	int rc = ar_vfs_open(vfs, path, AR_VFS_WRITE | AR_VFS_CREATE | AR_VFS_TRUNC, &fd);
	if (rc < 0)
		die("open", rc);
	uint64_t t0 = now_ns();
	for (uint64_t off = 0; off < bytes; off += 1 << 20)
		if (ar_vfs_pwrite(vfs, fd, buf, 1 << 20, off) < 0)
			die("write", -1);
	if (ar_vfs_fsync(vfs, fd) < 0)
		die("fsync", -1);
	double s = (double)(now_ns() - t0) / 1e9;
	ar_vfs_close(vfs, fd);
	free(buf);
	return (double)bytes / 1e6 / s;
}

static void print_dist(const char *what, struct dist d, struct dist base)
{
	printf("  %-44s p50 %8.1f us  p99 %8.1f us  p999 %8.1f us  (p50 %5.1fx baseline)\n", what,
	       (double)d.p50 / 1e3, (double)d.p99 / 1e3, (double)d.p999 / 1e3,
	       (double)d.p50 / (double)(base.p50 ? base.p50 : 1));
}

static struct ar_timeline *new_timeline(uint8_t n)
{
	struct tl_id id = { { 0xB0, n } };
	struct ar_timeline *tl;
	int rc = tenant_timeline_create(tenant, &id, 0x100, &tl);
	if (rc < 0)
		die("timeline", rc);
	return tl;
}

static void bench_getpage(const char *file)
{
	struct ar_timeline *tl = new_timeline(1);
	ar_lsn lsn = 0x100;
	for (uint32_t i = 0; i < 2048; i++) /* 16 MiB of other pages around the probes */
		put_page(tl, key_n(9, i), lsn += 8, i);
	for (uint32_t r = 0; r < 4; r++)
		put_page(tl, key_n(r, 7), lsn += 8, r);
	const int deltas[4] = { 0, 1, 10, 100 };
	for (uint32_t r = 1; r < 4; r++)
		for (int i = 0; i < deltas[r]; i++)
			put_record(tl, key_n(r, 7), lsn += 8);
	flush(tl);
	struct dist base_warm = measure_pread(file, 100000, false);
	struct dist base_cold = measure_pread(file, 300, true);
	printf("GetPage@LSN in the engine (test redo; 64 B records)\n");
	print_dist("baseline: 8 KiB pread, page cache warm", base_warm, base_warm);
	for (uint32_t r = 0; r < 4; r++) {
		char what[64];
		snprintf(what, sizeof(what), "image + %d records, warm", deltas[r]);
		print_dist(what, measure_get(tl, key_n(r, 7), lsn, 100000, false), base_warm);
	}
	print_dist("baseline: 8 KiB pread, page cache dropped", base_cold, base_cold);
	for (uint32_t r = 0; r < 4; r++) {
		char what[64];
		snprintf(what, sizeof(what), "image + %d records, cold", deltas[r]);
		print_dist(what, measure_get(tl, key_n(r, 7), lsn, 300, true), base_cold);
	}
}

/* A key whose image sits under n L0 layers that each cover it (keys on both sides). */
static void bench_layers(struct dist base)
{
	const int counts[3] = { 1, 10, 100 };
	uint32_t threshold = env.compact.compaction_threshold;
	env.compact.compaction_threshold = 0; /* L0s pile up on purpose: no backpressure */
	printf("read amplification: image under N L0 layers whose key ranges cover it (warm)\n");
	for (int c = 0; c < 3; c++) {
		struct ar_timeline *tl = new_timeline((uint8_t)(10 + c));
		ar_lsn lsn = 0x100;
		put_page(tl, key_n(5, 500), lsn += 8, 1);
		flush(tl);
		for (int i = 0; i < counts[c]; i++) {
			put_page(tl, key_n(5, (uint32_t)i), lsn += 8, (uint64_t)i);
			put_page(tl, key_n(5, 1000 + (uint32_t)i), lsn += 8, (uint64_t)i);
			flush(tl);
		}
		char what[64];
		snprintf(what, sizeof(what), "%d layers above the image", counts[c]);
		print_dist(what, measure_get(tl, key_n(5, 500), lsn, 20000, false), base);
	}
	env.compact.compaction_threshold = threshold;
}

static void bench_branches(struct dist base)
{
	const int depths[3] = { 1, 5, 20 };
	printf("branch depth: the image is on the root, read from the deepest branch (warm)\n");
	for (int c = 0; c < 3; c++) {
		struct ar_timeline *tl = new_timeline((uint8_t)(20 + c)), *child;
		ar_lsn lsn = 0x100;
		put_page(tl, key_n(6, 1), lsn += 8, 1);
		flush(tl);
		for (int d = 0; d < depths[c]; d++) {
			struct tl_id id = { { 0xC0, (uint8_t)c, (uint8_t)d } };
			int rc = tenant_branch(tenant, tl_id(tl), lsn, &id, &child);
			if (rc < 0)
				die("branch", rc);
			tl = child;
			put_page(tl, key_n(6, 100 + (uint32_t)d), lsn += 8, (uint64_t)d);
			flush(tl);
		}
		char what[64];
		snprintf(what, sizeof(what), "branch depth %d", depths[c]);
		print_dist(what, measure_get(tl, key_n(6, 1), lsn, 20000, false), base);
	}
}

static void bench_writes(const char *file)
{
	uint64_t bytes = 64ull << 20;
	double seq = seq_write_mbps(file, bytes);
	struct ar_timeline *tl = new_timeline(40);
	ar_lsn lsn = 0x100;
	for (uint32_t i = 0; i < bytes / AR_PAGE_BYTES; i++)
		put_page(tl, key_n(7, i), lsn += 8, i);
	tl_maybe_freeze(tl, true);
	uint64_t t0 = now_ns();
	int rc = tl_flush(tl);
	double flush_s = (double)(now_ns() - t0) / 1e9;
	if (rc < 0)
		die("flush", rc);
	/* 10 L0s of 6.4 MiB, then one compaction pass over all of them. */
	for (int l = 0; l < 10; l++) {
		for (uint32_t i = 0; i < 800; i++)
			put_page(tl, key_n(8, i * 10 + (uint32_t)l), lsn += 8, i);
		flush(tl);
	}
	bool did;
	t0 = now_ns();
	rc = tl_compact(tl, &did);
	double compact_s = (double)(now_ns() - t0) / 1e9;
	if (rc < 0 || !did)
		die("compact", rc);
	double compact_mb = 10.0 * 800 * AR_PAGE_BYTES / 1e6;
	printf("writes (values: 8 KiB pages, half compressible)\n");
	printf("  %-44s %8.1f MB/s\n", "baseline: sequential write, 1 MiB + fsync", seq);
	printf("  %-44s %8.1f MB/s  (%.2fx baseline)\n", "layer write (flush of 64 MiB)",
	       (double)bytes / 1e6 / flush_s, (double)bytes / 1e6 / flush_s / seq);
	printf("  %-44s %8.1f MB/s  (%.2fx baseline)\n", "compaction (10 L0s, 64 MiB in)",
	       compact_mb / compact_s, compact_mb / compact_s / seq);
}

int main(void)
{
	char file[300], err[LYR_ERROR_BYTES];
	snprintf(dir, sizeof(dir), "/var/tmp/argon-engine-bench-XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp", -1);
	snprintf(file, sizeof(file), "%s/baseline", dir);
	int rc = ar_vfs_real_create(64, &vfs);
	if (rc == 0)
		rc = ar_blockcache_create(64u << 20, &cache);
	if (rc < 0)
		die("setup", rc);
	env = (struct tl_env){ .vfs = vfs,
			       .cache = cache,
			       .redo = &ar_test_redo,
			       .checkpoint_distance_bytes = 256u << 20,
			       .compact = { .compaction_threshold = 10,
					    .compaction_l0_max = 10,
					    .compaction_target_bytes = 128u << 20,
					    .image_creation_threshold = 3,
					    .image_target_bytes = 128u << 20 } };
	char tdir[300];
	snprintf(tdir, sizeof(tdir), "%s/tenant", dir);
	struct tenant_params params = { .shards = { .shard_count = 1 } };
	rc = tenant_create(&env, tdir, &params, &tenant);
	if (rc < 0)
		die("tenant", rc);
	(void)err;
	printf("argon-engine-bench: real disk (io_uring VFS) under %s\n", dir);
	bench_writes(file); /* also leaves the 64 MiB baseline file for the reads */
	bench_getpage(file);
	struct dist base = measure_pread(file, 100000, false);
	bench_layers(base);
	bench_branches(base);
	tenant_close(tenant);
	ar_blockcache_destroy(cache);
	ar_vfs_destroy(vfs);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : 1;
}
