/*
 * wallog_test.c - The durable WAL log (wallog.h): round trips across segments
 * (simulated and real disk), acknowledged bytes surviving power cuts at every
 * kind of step (write, segment creation, fsync, rename, directory sync), a
 * failed fsync and a full disk, timeline switches, trim, and a read-only
 * handle seeing segments created after it was opened.
 */
#include "common/err.h"
#include "common/vfs.h"
#include "ingest/wallog.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define SEG ((uint32_t)1 << 20)
#define SIM_DIR "/data/tenant/wal"
#define CRASH_ITERATIONS 240
#define CRASH_SPAN_BYTES (12 * (size_t)SEG)

static uint64_t current_seed; /* printed with a failure, to replay it */

/* splitmix64 */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void fill_random(uint8_t *p, size_t len, uint64_t *s)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(next_rand(s) >> 24);
}

static struct ar_vfs *sim_new(uint64_t seed)
{
	struct ar_vfs *vfs = NULL;
	assert_int_equal(ar_vfs_sim_create(seed, &vfs), 0);
	return vfs;
}

static struct wallog *log_open(struct ar_vfs *vfs, const char *dir, bool writable)
{
	char err[WALLOG_ERROR_BYTES];
	struct wallog *l = NULL;

	int rc = wallog_open(vfs, dir, SEG, writable, &l, err);
	if (rc != 0)
		print_error("wallog_open: %s (seed %" PRIu64 ")\n", err, current_seed);
	assert_int_equal(rc, 0);
	return l;
}

static void write_ok(struct wallog *l, uint32_t tli, ar_lsn lsn, const void *data, size_t len)
{
	char err[WALLOG_ERROR_BYTES];
	int rc = wallog_write(l, tli, lsn, data, len, err);
	if (rc != 0)
		print_error("wallog_write: %s\n", err);
	assert_int_equal(rc, 0);
}

static void flush_ok(struct wallog *l)
{
	char err[WALLOG_ERROR_BYTES];
	int rc = wallog_flush(l, err);
	if (rc != 0)
		print_error("wallog_flush: %s\n", err);
	assert_int_equal(rc, 0);
}

/* A power cut: the handle goes, the disk falls back to what was durable. */
static struct wallog *power_cut(struct ar_vfs *vfs, struct wallog *l)
{
	wallog_close(l);
	ar_vfs_sim_restart(vfs, true);
	return log_open(vfs, SIM_DIR, true);
}

/* [lsn, lsn + len) of tli, across segments, reads as want (zeros if want is NULL). */
static void check_bytes(struct wallog *l, uint32_t tli, ar_lsn lsn, const uint8_t *want, size_t len)
{
	static uint8_t buf[SEG];
	char err[WALLOG_ERROR_BYTES];

	for (size_t done = 0; done < len;) {
		int64_t n = wallog_read(l, tli, lsn + done, buf, len - done, err);
		if (n <= 0)
			print_error("read at %" PRIX64 ": %" PRId64 " %s (seed %" PRIu64 ")\n",
				    lsn + done, n, err, current_seed);
		assert_true(n > 0);
		for (int64_t i = 0; i < n; i++) {
			uint8_t expect = want ? want[done + (size_t)i] : 0;
			if (buf[i] != expect) {
				print_error("byte at %" PRIX64
					    " is %02x, expected %02x (seed %" PRIu64 ")\n",
					    lsn + done + (uint64_t)i, buf[i], expect, current_seed);
				fail();
			}
		}
		done += (size_t)n;
	}
}

static void seg_path(const char *dir, uint32_t tli, uint64_t segno, char *path, size_t size)
{
	uint64_t per_log = 0x100000000ull / SEG;
	snprintf(path, size, "%s/%08" PRIX32 "%08" PRIX32 "%08" PRIX32, dir, tli,
		 (uint32_t)(segno / per_log), (uint32_t)(segno % per_log));
}

static uint64_t file_size(struct ar_vfs *vfs, const char *path)
{
	uint64_t bytes = 0;
	int fd;

	assert_int_equal(ar_vfs_open(vfs, path, AR_VFS_READ, &fd), 0);
	assert_int_equal(ar_vfs_size(vfs, fd, &bytes), 0);
	assert_int_equal(ar_vfs_close(vfs, fd), 0);
	return bytes;
}

struct dir_check {
	struct ar_vfs *vfs;
	const char *dir;
};

/* Every entry of the log's directory is a whole segment: no tmp, no short file. */
static int check_entry(void *ctx, const char *name)
{
	struct dir_check *c = ctx;
	char path[512];

	if (strstr(name, ".tmp"))
		print_error("leftover %s (seed %" PRIu64 ")\n", name, current_seed);
	assert_null(strstr(name, ".tmp"));
	assert_int_equal(strlen(name), 24);
	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	assert_int_equal(file_size(c->vfs, path), SEG);
	return 0;
}

static void check_dir(struct ar_vfs *vfs, const char *dir)
{
	struct dir_check c = { vfs, dir };
	assert_int_equal(ar_vfs_list_dir(vfs, dir, check_entry, &c), 0);
}

/* ---- 1. round trip ---- */

static void round_trip(struct ar_vfs *vfs, const char *dir)
{
	uint64_t s = 7;
	const ar_lsn start = 3 * (ar_lsn)SEG - 12345;
	const size_t span = 4 * (size_t)SEG + 777;
	uint8_t *model = malloc(span);
	char err[WALLOG_ERROR_BYTES];
	uint8_t buf[64];

	assert_non_null(model);
	fill_random(model, span, &s);
	struct wallog *l = log_open(vfs, dir, true);
	for (size_t pos = 0; pos < span;) {
		size_t n = 1 + next_rand(&s) % (SEG / 3);
		n = n < span - pos ? n : span - pos;
		write_ok(l, 1, start + pos, model + pos, n);
		pos += n;
	}
	flush_ok(l);
	check_bytes(l, 1, start, model, span);
	check_bytes(l, 1, 2 * (ar_lsn)SEG, NULL, SEG - 12345);           /* below the first write */
	check_bytes(l, 1, start + span, NULL, 7 * SEG - (start + span)); /* above the last */
	check_dir(vfs, dir);
	assert_int_equal(wallog_read(l, 1, 20 * (ar_lsn)SEG, buf, sizeof(buf), err), 0);
	assert_int_equal(wallog_read(l, 2, start, buf, sizeof(buf), err), 0);
	assert_int_equal(wallog_read(l, 1, 3 * (ar_lsn)SEG - 10, buf, sizeof(buf), err), 10);
	struct wallog_info info;
	assert_int_equal(wallog_info(l, &info, err), 0);
	assert_int_equal(info.segments, 5);
	assert_int_equal(info.first_segno, 2);
	assert_int_equal(info.last_segno, 6);
	assert_int_equal(info.bytes, 5 * (uint64_t)SEG);
	wallog_close(l);

	/* Reopened (read-only too), the bytes are all there. */
	l = log_open(vfs, dir, false);
	check_bytes(l, 1, start, model, span);
	wallog_close(l);
	free(model);
}

/* A segment file shorter than seg_bytes (not one of ours) reads as far as it goes
 * and is refused for writing. */
static void short_segment(struct ar_vfs *vfs, const char *dir)
{
	char path[512], err[WALLOG_ERROR_BYTES];
	uint8_t bytes[1000], buf[4096];
	int fd;

	memset(bytes, 0xAB, sizeof(bytes));
	seg_path(dir, 1, 30, path, sizeof(path));
	assert_int_equal(ar_vfs_open(vfs, path, AR_VFS_WRITE | AR_VFS_CREATE, &fd), 0);
	assert_int_equal(ar_vfs_pwrite(vfs, fd, bytes, sizeof(bytes), 0), sizeof(bytes));
	assert_int_equal(ar_vfs_close(vfs, fd), 0);
	struct wallog *l = log_open(vfs, dir, true);
	assert_int_equal(wallog_read(l, 1, 30 * (ar_lsn)SEG, buf, sizeof(buf), err), 1000);
	assert_memory_equal(buf, bytes, sizeof(bytes));
	assert_int_equal(wallog_read(l, 1, 30 * (ar_lsn)SEG + 2000, buf, sizeof(buf), err), 0);
	assert_int_equal(wallog_write(l, 1, 30 * (ar_lsn)SEG + 5, bytes, 10, err), -AR_ECORRUPT);
	assert_non_null(strstr(err, path));
	wallog_close(l);
	assert_int_equal(ar_vfs_unlink(vfs, path), 0);
}

static void test_round_trip_sim(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(1);
	round_trip(vfs, SIM_DIR);
	short_segment(vfs, SIM_DIR);
	ar_vfs_destroy(vfs);
}

/* ---- 2. crashes ---- */

struct crash_run {
	struct ar_vfs *vfs;
	struct wallog *l;
	uint64_t rng;
	ar_lsn base;  /* model[0] is the byte at base */
	ar_lsn pos;   /* the next write's LSN */
	ar_lsn acked; /* end of what a successful flush made durable */
	uint8_t *model;
};

/* How a round writes: small writes flushed often, or large ones flushed rarely
 * (more segments dirty than a handle keeps open), and how far off its crash is. */
struct crash_mode {
	uint32_t write_bytes_max;
	uint32_t flush_every;
	uint32_t crash_mutations_max;
};

static const struct crash_mode crash_modes[] = {
	{ SEG / 16, 2, 40 },
	{ SEG / 4, 3, 40 },
	{ SEG / 2, 16, 150 },
};

/* Write and flush at random until an operation fails (the crash) or writes run
 * out; the unacknowledged tail is written again from acked, as a receiver would. */
static void crash_run_write(struct crash_run *r, const struct crash_mode *m, int steps)
{
	char err[WALLOG_ERROR_BYTES];
	const ar_lsn end = r->base + CRASH_SPAN_BYTES;

	r->pos = r->acked;
	for (int i = 0; i < steps && r->pos < end; i++) {
		size_t n = 1 + next_rand(&r->rng) % m->write_bytes_max;
		n = n < end - r->pos ? n : (size_t)(end - r->pos);
		fill_random(r->model + (r->pos - r->base), n, &r->rng);
		if (wallog_write(r->l, 1, r->pos, r->model + (r->pos - r->base), n, err) < 0)
			return;
		r->pos += n;
		if (next_rand(&r->rng) % m->flush_every != 0)
			continue;
		if (wallog_flush(r->l, err) < 0)
			return;
		r->acked = r->pos;
	}
}

static void crash_check(struct crash_run *r)
{
	check_bytes(r->l, 1, r->base, r->model, (size_t)(r->acked - r->base));
	check_dir(r->vfs, SIM_DIR);
}

static void crash_iteration(uint64_t seed)
{
	struct crash_run r = { .rng = seed };

	current_seed = seed;
	r.vfs = sim_new(seed);
	r.model = malloc(CRASH_SPAN_BYTES);
	assert_non_null(r.model);
	r.base = (5 + next_rand(&r.rng) % 3) * (ar_lsn)SEG + next_rand(&r.rng) % SEG;
	r.acked = r.base;
	r.l = log_open(r.vfs, SIM_DIR, true);
	for (int round = 0; round < 3; round++) {
		const struct crash_mode *m = &crash_modes[next_rand(&r.rng) % 3];
		uint64_t k = 1 + next_rand(&r.rng) % m->crash_mutations_max;
		ar_vfs_sim_crash_at(r.vfs, ar_vfs_sim_mutations(r.vfs) + k);
		crash_run_write(&r, m, 64);
		r.l = power_cut(r.vfs, r.l); /* with or without a crash point hit */
		crash_check(&r);
	}
	crash_run_write(&r, &crash_modes[1], 8);
	flush_ok(r.l);
	r.acked = r.pos;
	r.l = power_cut(r.vfs, r.l);
	crash_check(&r);
	wallog_close(r.l);
	free(r.model);
	ar_vfs_destroy(r.vfs);
}

static void test_crash(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= CRASH_ITERATIONS; seed++)
		crash_iteration(seed);
	current_seed = 0;
}

/* ---- 3. failures ---- */

static void test_failed_flush(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(3);
	char err[WALLOG_ERROR_BYTES];
	uint8_t a[5000];
	uint64_t s = 3;

	fill_random(a, sizeof(a), &s);
	struct wallog *l = log_open(vfs, SIM_DIR, true);
	write_ok(l, 1, 2 * (ar_lsn)SEG + 100, a, sizeof(a));
	ar_vfs_sim_fail_next(vfs, "fsync", -EIO);
	assert_int_equal(wallog_flush(l, err), -EIO);
	assert_non_null(strstr(err, "000000010000000000000002"));
	flush_ok(l);
	l = power_cut(vfs, l);
	check_bytes(l, 1, 2 * (ar_lsn)SEG + 100, a, sizeof(a));
	wallog_close(l);
	ar_vfs_destroy(vfs);
}

static void test_no_space(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(4);
	char err[WALLOG_ERROR_BYTES];
	uint8_t a[5000], b[7000];
	uint64_t s = 4;
	const ar_lsn at_a = 3 * (ar_lsn)SEG - 2000, at_b = 4 * (ar_lsn)SEG + 10;

	fill_random(a, sizeof(a), &s);
	fill_random(b, sizeof(b), &s);
	struct wallog *l = log_open(vfs, SIM_DIR, true);
	write_ok(l, 1, at_a, a, sizeof(a)); /* segments 2 and 3 */
	flush_ok(l);
	ar_vfs_sim_fail_next(vfs, "pwrite", -ENOSPC); /* filling segment 4 */
	assert_int_equal(wallog_write(l, 1, at_b, b, sizeof(b), err), -ENOSPC);
	assert_non_null(strstr(err, "creating WAL segment " SIM_DIR "/000000010000000000000004"));
	assert_non_null(strstr(err, "No space left on device"));
	check_dir(vfs, SIM_DIR); /* no tmp left */
	check_bytes(l, 1, at_a, a, sizeof(a));
	write_ok(l, 1, at_b, b, sizeof(b));

	/* The directory sync after a segment's rename fails: the next flush does it. */
	ar_vfs_sim_fail_next(vfs, "fsync_dir", -EIO);
	assert_int_equal(wallog_write(l, 1, 5 * (ar_lsn)SEG, a, sizeof(a), err), -EIO);
	assert_non_null(strstr(err, "000000010000000000000005"));
	write_ok(l, 1, 5 * (ar_lsn)SEG, a, sizeof(a));
	/* A failed write into a segment: written again, it is fine. */
	ar_vfs_sim_fail_next(vfs, "pwrite", -EIO);
	assert_int_equal(wallog_write(l, 1, at_b + 100, b, 10, err), -EIO);
	assert_non_null(strstr(err, "writing WAL segment"));
	write_ok(l, 1, at_b, b, sizeof(b));
	flush_ok(l);
	l = power_cut(vfs, l);
	check_bytes(l, 1, at_a, a, sizeof(a));
	check_bytes(l, 1, at_b, b, sizeof(b));
	check_bytes(l, 1, 5 * (ar_lsn)SEG, a, sizeof(a));
	check_dir(vfs, SIM_DIR);
	wallog_close(l);
	ar_vfs_destroy(vfs);
}

/* ---- 4. timeline switch ---- */

/* Timeline 2's segment 2 is either missing or old bytes below off, zeros above. */
static void check_switched(struct wallog *l, const uint8_t *old, size_t off, bool must_exist)
{
	static uint8_t buf[SEG];
	char err[WALLOG_ERROR_BYTES];

	int64_t n = wallog_read(l, 2, 2 * (ar_lsn)SEG, buf, SEG, err);
	if (n == 0 && !must_exist)
		return;
	assert_int_equal(n, SEG);
	check_bytes(l, 2, 2 * (ar_lsn)SEG, old, off);
	check_bytes(l, 2, 2 * (ar_lsn)SEG + off, NULL, SEG - off);
}

static void test_switch_timeline(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(5);
	char err[WALLOG_ERROR_BYTES];
	static uint8_t old[SEG], fresh[5000];
	uint64_t s = 5;
	const size_t off = 60000;
	const ar_lsn at = 2 * (ar_lsn)SEG, sw = at + off;

	fill_random(old, sizeof(old), &s);
	fill_random(fresh, sizeof(fresh), &s);
	struct wallog *l = log_open(vfs, SIM_DIR, true);
	write_ok(l, 1, at - 1000, old, 1000 + 100000);
	flush_ok(l);
	/* A crash at each step of the switch: all of the segment or none of it. */
	for (uint64_t k = 1; k <= 12; k++) {
		ar_vfs_sim_crash_at(vfs, ar_vfs_sim_mutations(vfs) + k);
		int rc = wallog_switch_timeline(l, 1, 2, sw, err);
		l = power_cut(vfs, l);
		check_switched(l, old + 1000, off, rc == 0);
		check_dir(vfs, SIM_DIR);
	}
	assert_int_equal(wallog_switch_timeline(l, 1, 2, sw, err), 0);
	l = power_cut(vfs, l); /* durable without a flush */
	check_switched(l, old + 1000, off, true);
	write_ok(l, 2, sw, fresh, sizeof(fresh));
	flush_ok(l);
	/* Called again (a restart), it keeps what timeline 2 holds by now. */
	assert_int_equal(wallog_switch_timeline(l, 1, 2, sw, err), 0);
	l = power_cut(vfs, l);
	check_bytes(l, 2, at, old + 1000, off);
	check_bytes(l, 2, sw, fresh, sizeof(fresh));
	check_bytes(l, 2, sw + sizeof(fresh), NULL, SEG - off - sizeof(fresh));
	check_bytes(l, 1, at - 1000, old, 1000 + 100000);
	uint8_t buf[16];
	assert_int_equal(wallog_read(l, 2, at - 1000, buf, sizeof(buf), err), 0);
	/* At a segment boundary, the new segment is all zeros. */
	assert_int_equal(wallog_switch_timeline(l, 2, 3, 3 * (ar_lsn)SEG, err), 0);
	check_bytes(l, 3, 3 * (ar_lsn)SEG, NULL, SEG);
	wallog_close(l);
	ar_vfs_destroy(vfs);
}

/* ---- 5. trim ---- */

static void trim_fill(struct wallog *l)
{
	uint8_t bytes[100];

	for (uint64_t segno = 1; segno <= 7; segno++) {
		for (uint32_t tli = 1; tli <= 2; tli++) {
			if ((tli == 1 && segno > 5) || (tli == 2 && segno < 4))
				continue;
			memset(bytes, (int)(tli * 16 + segno), sizeof(bytes));
			write_ok(l, tli, segno * SEG + 50, bytes, sizeof(bytes));
		}
	}
	flush_ok(l);
}

/* Each segment of tli 1 (1..5) and tli 2 (4..7) at or above first_segno is
 * there with its bytes; those below are there or not (either_below). */
static void trim_check(struct wallog *l, uint64_t first_segno, bool either_below)
{
	uint8_t bytes[100], buf[100];
	char err[WALLOG_ERROR_BYTES];

	for (uint64_t segno = 1; segno <= 7; segno++) {
		for (uint32_t tli = 1; tli <= 2; tli++) {
			if ((tli == 1 && segno > 5) || (tli == 2 && segno < 4))
				continue;
			int64_t n = wallog_read(l, tli, segno * SEG + 50, buf, sizeof(buf), err);
			if (segno < first_segno && (n == 0 || !either_below)) {
				assert_int_equal(n, 0);
				continue;
			}
			assert_int_equal(n, sizeof(buf));
			memset(bytes, (int)(tli * 16 + segno), sizeof(bytes));
			assert_memory_equal(buf, bytes, sizeof(bytes));
		}
	}
}

static void test_trim(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(6);
	char err[WALLOG_ERROR_BYTES];
	struct wallog_info info;

	struct wallog *l = log_open(vfs, SIM_DIR, true);
	trim_fill(l);
	for (uint64_t k = 1; k <= 6; k++) {
		ar_vfs_sim_crash_at(vfs, ar_vfs_sim_mutations(vfs) + k);
		int rc = wallog_trim(l, 4 * (ar_lsn)SEG + 10, err);
		assert_true(rc == -EIO || (rc >= 0 && rc <= 3)); /* crashed, or done before */
		l = power_cut(vfs, l);
		trim_check(l, 4, true);
		check_dir(vfs, SIM_DIR);
	}
	int removed = wallog_trim(l, 4 * (ar_lsn)SEG + 10, err);
	assert_in_range(removed, 0, 3);
	trim_check(l, 4, false);
	assert_int_equal(wallog_info(l, &info, err), 0);
	assert_int_equal(info.segments, 6);
	assert_int_equal(info.first_segno, 4);
	assert_int_equal(info.last_segno, 7);
	/* At a boundary: segment 6 holds the LSN and stays. */
	assert_int_equal(wallog_trim(l, 6 * (ar_lsn)SEG, err), 4);
	assert_int_equal(wallog_trim(l, 6 * (ar_lsn)SEG, err), 0);
	l = power_cut(vfs, l);
	trim_check(l, 6, false);
	assert_int_equal(wallog_info(l, &info, err), 0);
	assert_int_equal(info.segments, 2);
	assert_int_equal(info.first_segno, 6);
	assert_int_equal(info.last_segno, 7);
	assert_int_equal(info.bytes, 2 * (uint64_t)SEG);
	wallog_close(l);
	ar_vfs_destroy(vfs);
}

/* A fresh trim with no crash removes exactly the three of timeline 1. */
static void test_trim_exact(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(7);
	char err[WALLOG_ERROR_BYTES];

	struct wallog *l = log_open(vfs, SIM_DIR, true);
	trim_fill(l);
	assert_int_equal(wallog_trim(l, 4 * (ar_lsn)SEG - 1, err), 2);
	trim_check(l, 3, false);
	assert_int_equal(wallog_trim(l, 4 * (ar_lsn)SEG + 10, err), 1);
	trim_check(l, 4, false);
	wallog_close(l);
	ar_vfs_destroy(vfs);
}

/* ---- 6. readers ---- */

/* reader_vfs: the reader's own instance (the writer's for the sim). */
static void reader_sees_new(struct ar_vfs *vfs, struct ar_vfs *reader_vfs, const char *dir)
{
	char err[WALLOG_ERROR_BYTES];
	uint8_t data[3000], buf[3000];
	uint64_t s = 8;

	fill_random(data, sizeof(data), &s);
	struct wallog *w = log_open(vfs, dir, true);
	struct wallog *r = log_open(reader_vfs, dir, false);
	assert_int_equal(wallog_read(r, 1, 40 * (ar_lsn)SEG, buf, sizeof(buf), err), 0);
	write_ok(w, 1, 40 * (ar_lsn)SEG, data, sizeof(data));
	assert_int_equal(wallog_read(r, 1, 40 * (ar_lsn)SEG, buf, sizeof(buf), err), sizeof(buf));
	assert_memory_equal(buf, data, sizeof(data));
	/* Another one, after the reader has a segment open. */
	assert_int_equal(wallog_read(r, 1, 41 * (ar_lsn)SEG, buf, sizeof(buf), err), 0);
	write_ok(w, 1, 41 * (ar_lsn)SEG - 10, data, sizeof(data));
	flush_ok(w);
	check_bytes(r, 1, 41 * (ar_lsn)SEG - 10, data, sizeof(data));
	wallog_close(r);
	wallog_close(w);
}

static void test_reader_sim(void **state)
{
	(void)state;
	struct ar_vfs *vfs = sim_new(9);
	char err[WALLOG_ERROR_BYTES];
	struct wallog *l = NULL;
	int fd;

	/* Read-only: a missing directory is an error and is not created. */
	assert_int_equal(wallog_open(vfs, SIM_DIR, SEG, false, &l, err), -ENOENT);
	assert_non_null(strstr(err, SIM_DIR));
	assert_int_equal(ar_vfs_exists(vfs, SIM_DIR), -ENOENT);
	wallog_close(log_open(vfs, SIM_DIR, true));
	/* ... and leaves a stray tmp file alone; a writable open removes it. */
	const char *tmp = SIM_DIR "/000000010000000000000009.tmp";
	assert_int_equal(ar_vfs_open(vfs, tmp, AR_VFS_WRITE | AR_VFS_CREATE, &fd), 0);
	assert_int_equal(ar_vfs_close(vfs, fd), 0);
	wallog_close(log_open(vfs, SIM_DIR, false));
	assert_int_equal(ar_vfs_exists(vfs, tmp), 0);
	reader_sees_new(vfs, vfs, SIM_DIR);
	assert_int_equal(ar_vfs_exists(vfs, tmp), -ENOENT);
	ar_vfs_destroy(vfs);
}

/* ---- the real disk ---- */

static int remove_entry(void *ctx, const char *name)
{
	struct dir_check *c = ctx;
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	return ar_vfs_unlink(c->vfs, path);
}

static void test_real(void **state)
{
	(void)state;
	char root[] = "/tmp/wallog_test.XXXXXX";
	char dir[256], level[256];
	struct ar_vfs *vfs = NULL, *reader_vfs = NULL;

	assert_non_null(mkdtemp(root));
	/* Written as the receiver writes (blocking system calls), read through a ring. */
	assert_int_equal(ar_vfs_real_create_blocking(&vfs), 0);
	assert_int_equal(ar_vfs_real_create(64, &reader_vfs), 0);
	snprintf(dir, sizeof(dir), "%s/a/b/wal/", root); /* parents made, slash dropped */
	round_trip(vfs, dir);
	dir[strlen(dir) - 1] = '\0';
	short_segment(vfs, dir);
	reader_sees_new(vfs, reader_vfs, dir);
	check_dir(vfs, dir);

	struct dir_check c = { vfs, dir };
	assert_int_equal(ar_vfs_list_dir(vfs, dir, remove_entry, &c), 0);
	const char *levels[] = { "/a/b/wal", "/a/b", "/a", "" };
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(level, sizeof(level), "%s%s", root, levels[i]);
		assert_int_equal(ar_vfs_rmdir(vfs, level), 0);
	}
	ar_vfs_destroy(reader_vfs);
	ar_vfs_destroy(vfs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_sim),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_failed_flush),
		cmocka_unit_test(test_no_space),
		cmocka_unit_test(test_switch_timeline),
		cmocka_unit_test(test_trim),
		cmocka_unit_test(test_trim_exact),
		cmocka_unit_test(test_reader_sim),
		cmocka_unit_test(test_real),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
