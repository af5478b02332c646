/*
 * pgprobe.c - argon-pgprobe: a small program linked from PostgreSQL 15's own
 * backend objects (the cached build of Debian's source package, without md.o
 * swapped yet and without main.o), proving the link recipe later executables use.
 *
 *   argon-pgprobe version        the PostgreSQL version it was linked from
 *   argon-pgprobe checksum FILE  verify every page's pd_checksum in a relation
 *                                segment with PostgreSQL's pg_checksum_page()
 *
 * Written in PostgreSQL's dialect (its headers and CFLAGS): declarations first.
 */
#include "postgres.h"

#include "storage/bufpage.h"
#include "storage/checksum.h"
#include "utils/memutils.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The backend expects these from main.c, which is not linked. */
const char *progname = "argon-pgprobe";

static int
probe_checksum(const char *path)
{
	int			fd;
	char	   *page;
	BlockNumber blkno = 0;
	uint32		mismatches = 0;
	uint32		unset = 0;
	ssize_t		n;

	fd = open(path, O_RDONLY);
	if (fd < 0)
	{
		fprintf(stderr, "argon-pgprobe: could not open \"%s\": %s\n",
				path, strerror(errno));
		return 2;
	}
	/* palloc: the backend's memory contexts work in this process. */
	page = palloc(BLCKSZ);
	while ((n = read(fd, page, BLCKSZ)) == BLCKSZ)
	{
		PageHeader	header = (PageHeader) page;
		uint16		computed;

		if (PageIsNew(page))
		{
			unset++;
			blkno++;
			continue;
		}
		computed = pg_checksum_page(page, blkno);
		printf("block %u stored %u computed %u%s\n", blkno, header->pd_checksum, computed,
			   header->pd_checksum == computed ? "" : " MISMATCH");
		if (header->pd_checksum != computed)
			mismatches++;
		blkno++;
	}
	close(fd);
	pfree(page);
	if (n != 0)
	{
		fprintf(stderr, "argon-pgprobe: \"%s\" is not a whole number of %d-byte pages\n",
				path, BLCKSZ);
		return 2;
	}
	printf("%u blocks, %u new, %u mismatches\n", blkno, unset, mismatches);
	return mismatches == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	MemoryContextInit();
	if (argc == 2 && strcmp(argv[1], "version") == 0)
	{
		printf("%s\n", PG_VERSION_STR);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "checksum") == 0)
		return probe_checksum(argv[2]);
	fprintf(stderr, "usage: argon-pgprobe version | checksum FILE\n");
	return 2;
}
