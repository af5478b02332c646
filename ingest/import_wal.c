/*
 * import_wal.c - WAL segment files into a timeline: io_uring reads with a deep
 * queue running ahead of the decoder (read-ahead across segment files), records
 * ingested in order, layers flushed and compacted between records, a progress
 * line on long imports.
 *
 * Segments are named as PostgreSQL names them (timeline, log, segment: 24 hex
 * digits), optionally ".partial" (pg_receivewal's current file).  A missing
 * segment, a recycled one (wrong page address) or zeroed space is the end of
 * the WAL; a bad record is an error naming its LSN, with everything before it
 * kept.
 */
#include "ingest/import.h"

#include "common/err.h"
#include "common/uring.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QD_MAX 64
#define RECORDS_PER_BACKGROUND 4096

struct slot {
	uint8_t *buf;
	ar_lsn lsn; /* of the chunk's first byte */
	uint32_t want;
	int res;
	bool busy;
	bool done;
};

struct wimp {
	struct ar_store *s;
	struct ar_timeline *tl;
	struct walingest *wi;
	const char *dir;
	const struct ingest_state *st;
	const struct wal_import_options *o;
	struct wal_import_result *res;
	char *err;
	struct io_uring ring;
	struct slot slots[QD_MAX];
	uint32_t qd;
	ar_lsn issue_lsn; /* the next chunk to read */
	bool issue_end;   /* no segment file for issue_lsn */
	int fd;           /* the segment being issued from */
	uint64_t fd_segno;
	uint64_t records_since;
	uint64_t visited; /* records handed to o->visit */
	int cb_rc;
	bool stop;
	struct timespec t0, last_progress;
};

static double since(const struct timespec *a)
{
	struct timespec b;
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

static int open_segment(struct wimp *w, uint64_t segno)
{
	uint64_t per_log = 0x100000000ull / w->st->seg_bytes;
	char path[700];
	snprintf(path, sizeof(path), "%s/%08X%08X%08X", w->dir, w->st->pg_timeline,
		 (unsigned)(segno / per_log), (unsigned)(segno % per_log));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		size_t n = strlen(path);
		snprintf(path + n, sizeof(path) - n, ".partial");
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	w->res->segments++;
	return fd;
}

/* Queue the read of the next chunk into slot i, opening segments as reached. */
static int issue(struct wimp *w, uint32_t i)
{
	struct slot *sl = &w->slots[i];
	if (w->issue_end)
		return 0;
	uint64_t segno = w->issue_lsn / w->st->seg_bytes;
	if (w->fd < 0 || w->fd_segno != segno) {
		if (w->fd >= 0) {
			/* A queued read takes its file when submitted: submit before closing. */
			io_uring_submit(&w->ring);
			close(w->fd);
		}
		w->fd = open_segment(w, segno);
		w->fd_segno = segno;
		if (w->fd == -ENOENT) {
			w->issue_end = true;
			return 0;
		}
		if (w->fd < 0) {
			snprintf(w->err, STORE_ERROR_BYTES, "opening WAL segment %lu in %s: %s",
				 (unsigned long)segno, w->dir, strerror(-w->fd));
			return w->fd;
		}
	}
	uint64_t off = w->issue_lsn % w->st->seg_bytes;
	uint64_t left = w->st->seg_bytes - off;
	uint32_t n = w->o->chunk_bytes - (uint32_t)(w->issue_lsn % w->o->chunk_bytes);
	if (n > left)
		n = (uint32_t)left;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_read(sqe, w->fd, sl->buf, n, off);
	io_uring_sqe_set_data64(sqe, i);
	*sl = (struct slot){ .buf = sl->buf, .lsn = w->issue_lsn, .want = n, .busy = true };
	w->issue_lsn += n;
	return 0;
}

static void progress(struct wimp *w, bool last)
{
	if (!w->o->progress || (!last && since(&w->last_progress) < 2.0))
		return;
	clock_gettime(CLOCK_MONOTONIC, &w->last_progress);
	double secs = since(&w->t0), mib = (double)w->res->bytes_read / (1 << 20);
	fprintf(stderr, "%s: %X/%08X, %.0f MiB read, %.0f MiB/s, %lu records%s\n",
		w->wi ? "import" : "read", (unsigned)(w->res->last_end_lsn >> 32),
		(unsigned)w->res->last_end_lsn, mib, secs > 0 ? mib / secs : 0.0,
		(unsigned long)(w->wi ? wi_stats(w->wi)->records : w->visited),
		last ? ", done" : "");
}

static int on_record(void *ctx, const struct wal_record *rec)
{
	struct wimp *w = ctx;
	if (!w->wi) {
		w->visited++;
		w->res->last_end_lsn = rec->end_lsn;
		int vrc = w->o->visit(w->o->visit_ctx, rec);
		if (vrc < 0) {
			w->cb_rc = vrc;
			return vrc;
		}
		if (w->visited % RECORDS_PER_BACKGROUND == 0)
			progress(w, false);
		return w->o->stop_lsn && rec->end_lsn >= w->o->stop_lsn ? (w->stop = true, 1) : 0;
	}
	int rc = wi_record(w->wi, rec);
	if (rc < 0) {
		snprintf(w->err, STORE_ERROR_BYTES, "%s", wi_error(w->wi));
		w->cb_rc = rc;
		w->res->ingest_failed = true;
		return rc;
	}
	w->res->last_end_lsn = rec->end_lsn;
	if (++w->records_since >= RECORDS_PER_BACKGROUND) {
		w->records_since = 0;
		wi_maybe_freeze(w->wi, false);
		rc = store_background(w->s, w->tl, w->err);
		if (rc < 0) {
			w->cb_rc = rc;
			return rc;
		}
		progress(w, false);
	}
	if (w->o->stop_lsn && rec->end_lsn >= w->o->stop_lsn) {
		w->stop = true;
		return 1;
	}
	return 0;
}

/* Wait until slot i's read completed (completions of other slots are noted). */
static int wait_slot(struct wimp *w, uint32_t i)
{
	/* Bounded: every wait takes one completion of a read in flight. */
	while (!w->slots[i].done) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&w->ring, &cqe);
		if (rc == -EINTR)
			continue;
		if (rc < 0)
			return rc;
		struct slot *sl = &w->slots[io_uring_cqe_get_data64(cqe)];
		sl->res = cqe->res;
		sl->done = true;
		io_uring_cqe_seen(&w->ring, cqe);
	}
	return 0;
}

/* Feed one completed chunk to the reader; *end at a clean end of WAL. */
static int feed(struct wimp *w, struct wal_reader *r, struct slot *sl, bool *end)
{
	if (sl->res < 0) {
		snprintf(w->err, STORE_ERROR_BYTES, "reading WAL at %X/%08X: %s",
			 (unsigned)(sl->lsn >> 32), (unsigned)sl->lsn, strerror(-sl->res));
		return sl->res;
	}
	uint32_t got = (uint32_t)sl->res;
	w->res->bytes_read += got;
	for (uint32_t off = 0; off + WAL_PAGE_BYTES <= got; off += WAL_PAGE_BYTES) {
		int rc = wal_reader_page(r, sl->buf + off, sl->lsn + off, on_record, w);
		if (rc == 0)
			continue;
		if (w->cb_rc < 0)
			return w->cb_rc;
		if (rc < 0) {
			snprintf(w->err, STORE_ERROR_BYTES, "%s", wal_reader_error(r));
			return rc;
		}
		*end = true; /* AR_WAL_END, or stop_lsn reached */
		return 0;
	}
	if (got < sl->want)
		*end = true; /* the file ends here: the newest segment, still being written */
	return 0;
}

static int import_loop(struct wimp *w, struct wal_reader *r)
{
	int rc = 0;
	for (uint32_t i = 0; i < w->qd && rc == 0; i++)
		rc = issue(w, i);
	io_uring_submit(&w->ring);
	uint32_t head = 0;
	bool end = false;
	while (rc == 0 && !end) {
		struct slot *sl = &w->slots[head];
		if (!sl->busy) {
			end = true; /* nothing more was issued: the next segment is missing */
			break;
		}
		rc = wait_slot(w, head);
		if (rc == 0)
			rc = feed(w, r, sl, &end);
		sl->busy = false;
		if (rc == 0 && !end) {
			rc = issue(w, head);
			io_uring_submit(&w->ring);
		}
		head = (head + 1) % w->qd;
	}
	w->res->clean_end = rc == 0;
	return rc;
}

int wal_import(struct ar_store *s, struct ar_timeline *tl, struct walingest *wi, const char *dir,
	       const struct ingest_state *st, const struct wal_import_options *o,
	       struct wal_import_result *res, char err[STORE_ERROR_BYTES])
{
	struct wimp *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct wimp){ .s = s,
			    .tl = tl,
			    .wi = wi,
			    .dir = dir,
			    .st = st,
			    .o = o,
			    .res = res,
			    .err = err,
			    .fd = -1 };
	memset(res, 0, sizeof(*res));
	err[0] = '\0';
	w->qd = o->queue_depth < 1 ? 1 : o->queue_depth > QD_MAX ? QD_MAX : o->queue_depth;
	if (o->chunk_bytes < WAL_PAGE_BYTES || (o->chunk_bytes & (o->chunk_bytes - 1)) ||
	    st->seg_bytes % o->chunk_bytes) {
		free(w);
		snprintf(err, STORE_ERROR_BYTES,
			 "read size %u must be a power of two dividing "
			 "the segment size",
			 o->chunk_bytes);
		return -EINVAL;
	}
	struct wal_reader *r = NULL;
	int rc = wal_reader_create(st->next_lsn, st->seg_bytes, &r);
	if (rc == 0)
		rc = ar_uring_init(w->qd, &w->ring, NULL);
	for (uint32_t i = 0; rc == 0 && i < w->qd; i++)
		if (!(w->slots[i].buf = aligned_alloc(4096, o->chunk_bytes)))
			rc = -ENOMEM;
	if (rc < 0 && !err[0])
		snprintf(err, STORE_ERROR_BYTES, "starting the WAL import: %s", strerror(-rc));
	if (rc == 0) {
		wal_reader_expect_system(r, st->system_id);
		w->issue_lsn = st->next_lsn - st->next_lsn % WAL_PAGE_BYTES;
		clock_gettime(CLOCK_MONOTONIC, &w->t0);
		w->last_progress = w->t0;
		res->last_end_lsn = st->next_lsn;
		rc = import_loop(w, r);
		res->next_lsn = wal_reader_next_lsn(r);
		res->seconds = since(&w->t0);
		progress(w, true);
		for (uint32_t i = 0; i < w->qd; i++)
			if (w->slots[i].busy && wait_slot(w, i) < 0)
				abort(); /* a buffer the kernel may still write into */
	}
	if (w->ring.ring_fd > 0)
		ar_uring_exit(&w->ring);
	for (uint32_t i = 0; i < w->qd; i++)
		free(w->slots[i].buf);
	if (w->fd >= 0)
		close(w->fd);
	wal_reader_destroy(r);
	free(w);
	return rc;
}
