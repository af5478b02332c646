/*
 * pgchecksum.h - PostgreSQL's data-page checksum for pages Argon hands out.
 * The algorithm is PostgreSQL's own: pgchecksum.c compiles its header-only
 * storage/checksum_impl.h from the cached PostgreSQL build (never copied here).
 */
#ifndef AR_INGEST_PGCHECKSUM_H
#define AR_INGEST_PGCHECKSUM_H

#include <stdbool.h>
#include <stdint.h>

/* pg_checksum_page(): the checksum of an 8192-byte page as block blkno of its
 * relation fork (pd_checksum itself is left out of the sum). */
uint16_t ar_pg_checksum_page(uint8_t *page, uint32_t blkno);

/* Set pd_checksum (bytes 8-9, little-endian) as PostgreSQL would on write; a new
 * page (pd_upper 0) is left alone, as PostgreSQL never checksums one.  Returns
 * whether it set one. */
bool ar_pg_page_set_checksum(uint8_t *page, uint32_t blkno);

#endif
