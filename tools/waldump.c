/*
 * waldump.c - argon-waldump: PostgreSQL 15 WAL as Argon's decoder reads it, one
 * line per record, for inspection and for comparing with pg_waldump.
 *
 *   argon-waldump [--start LSN] [--end LSN] [--timeline N] [--segment-size BYTES]
 *                 [--images] PG_WAL_DIR
 *
 * Segments are read in order from the directory, from --start or from the first
 * segment there (a record continuing into it is skipped); the decoder verifies every
 * record's CRC and prev-link.  --images rebuilds every full-page image too.
 * Exit: 0 at a clean end of WAL (or --end), 1 on a decoding error (named with
 * its LSN), 2 on usage or I/O errors.
 */
#include "ingest/walrec.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fork_names[] = { "main", "fsm", "vm", "init" };

struct dump {
	ar_lsn end;
	bool images;
	uint64_t records;
	uint64_t images_ok;
	int image_errors;
};

static bool parse_lsn(const char *s, ar_lsn *out)
{
	unsigned hi, lo;
	char tail;
	if (sscanf(s, "%X/%X%c", &hi, &lo, &tail) != 2)
		return false;
	*out = (ar_lsn)hi << 32 | lo;
	return true;
}

static int print_record(void *ctx, const struct wal_record *r)
{
	struct dump *d = ctx;
	if (d->end && r->lsn >= d->end)
		return 1;
	printf("lsn: %X/%08X prev %X/%08X rmgr: %s info: %02X tot: %u rec: %u tx: %u",
	       (unsigned)(r->lsn >> 32), (unsigned)r->lsn, (unsigned)(r->prev >> 32),
	       (unsigned)r->prev, wal_rmgr_name(r->rmid), r->info, r->tot_len,
	       r->tot_len - r->fpi_bytes, r->xid);
	for (int i = 0; i <= r->max_block_id; i++) {
		const struct wal_block *b = &r->blocks[i];
		if (!b->in_use)
			continue;
		printf(" blkref #%d: rel %u/%u/%u fork %s blk %u%s", i, b->rel.spc_oid,
		       b->rel.db_oid, b->rel.rel_number,
		       b->rel.fork < 4 ? fork_names[b->rel.fork] : "?", b->blkno,
		       b->has_image ? " FPW" : "");
		if (d->images && b->has_image) {
			uint8_t page[AR_PAGE_BYTES];
			char err[160];
			if (wal_block_image(b, page, err) == 0) {
				d->images_ok++;
			} else {
				printf(" (image: %s)", err);
				d->image_errors++;
			}
		}
	}
	printf("\n");
	d->records++;
	return 0;
}

/* The first segment of timeline tli in dir, as an LSN; 0 if none. */
static ar_lsn first_segment_lsn(const char *dir, uint32_t tli, uint32_t seg_bytes)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = UINT64_MAX;
	uint64_t per_xlogid = 0x100000000ull / seg_bytes;
	while (d && (e = readdir(d))) {
		unsigned t, log, seg;
		char tail;
		if (strlen(e->d_name) != 24 ||
		    sscanf(e->d_name, "%8X%8X%8X%c", &t, &log, &seg, &tail) != 3 || t != tli)
			continue;
		uint64_t segno = (uint64_t)log * per_xlogid + seg;
		if (segno < best)
			best = segno;
	}
	if (d)
		closedir(d);
	return best == UINT64_MAX ? 0 : best * seg_bytes;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: argon-waldump [--start LSN] [--end LSN] [--timeline N] "
		     "[--segment-size BYTES] [--images] PG_WAL_DIR\n");
}

/* Feed segment segno's pages; 0 to go on, AR_WAL_END, or an error. */
static int dump_segment(struct wal_reader *r, const char *dir, uint32_t tli, uint64_t segno,
			uint32_t seg_bytes, struct dump *d, bool *missing)
{
	char path[4096];
	uint64_t per_xlogid = 0x100000000ull / seg_bytes;
	snprintf(path, sizeof(path), "%s/%08X%08X%08X", dir, tli, (unsigned)(segno / per_xlogid),
		 (unsigned)(segno % per_xlogid));
	FILE *f = fopen(path, "rb");
	*missing = !f;
	if (!f)
		return AR_WAL_END;
	static uint8_t page[WAL_PAGE_BYTES];
	int rc = 0;
	for (uint64_t p = 0; rc == 0 && p < seg_bytes / WAL_PAGE_BYTES; p++) {
		if (fread(page, 1, sizeof(page), f) != sizeof(page)) {
			rc = AR_WAL_END; /* a partial segment: what was written ends here */
			break;
		}
		rc = wal_reader_page(r, page, segno * seg_bytes + p * WAL_PAGE_BYTES, print_record,
				     d);
	}
	fclose(f);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "start", required_argument, NULL, 's' },
		{ "end", required_argument, NULL, 'e' },
		{ "timeline", required_argument, NULL, 't' },
		{ "segment-size", required_argument, NULL, 'z' },
		{ "images", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	ar_lsn start = 0;
	uint32_t tli = 1, seg_bytes = 16u << 20;
	struct dump d = { 0 };
	int opt;
	while ((opt = getopt_long(argc, argv, "s:e:t:z:ih", options, NULL)) != -1) {
		if ((opt == 's' && !parse_lsn(optarg, &start)) ||
		    (opt == 'e' && !parse_lsn(optarg, &d.end)) || opt == '?') {
			usage(stderr);
			return 2;
		}
		if (opt == 't')
			tli = (uint32_t)strtoul(optarg, NULL, 10);
		if (opt == 'z')
			seg_bytes = (uint32_t)strtoul(optarg, NULL, 10);
		if (opt == 'i')
			d.images = true;
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	struct wal_reader *r;
	if (!start)
		start = first_segment_lsn(argv[optind], tli, seg_bytes);
	if (wal_reader_create(start, seg_bytes, &r) < 0) {
		fprintf(stderr, "argon-waldump: invalid segment size %u\n", seg_bytes);
		return 2;
	}
	int rc = 0;
	bool missing = false;
	for (uint64_t segno = start / seg_bytes; rc == 0; segno++)
		rc = dump_segment(r, argv[optind], tli, segno, seg_bytes, &d, &missing);
	if (rc < 0)
		fprintf(stderr, "argon-waldump: %s\n", wal_reader_error(r));
	else
		fprintf(stderr,
			"argon-waldump: %" PRIu64 " records, %" PRIu64
			" page images rebuilt, end of WAL at %X/%08X\n",
			d.records, d.images_ok, (unsigned)(wal_reader_next_lsn(r) >> 32),
			(unsigned)wal_reader_next_lsn(r));
	wal_reader_destroy(r);
	return rc < 0 || d.image_errors ? 1 : 0;
}
