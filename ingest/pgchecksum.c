/*
 * pgchecksum.c - PostgreSQL's page checksum (see pgchecksum.h), compiled from
 * its header-only implementation in the PostgreSQL build's include directory.
 */
#include "c.h"

#include "storage/checksum_impl.h"

#include "ingest/pgchecksum.h"

uint16_t ar_pg_checksum_page(uint8_t *page, uint32_t blkno)
{
	return pg_checksum_page((char *)page, blkno);
}

bool ar_pg_page_set_checksum(uint8_t *page, uint32_t blkno)
{
	PageHeader header = (PageHeader)page;
	if (PageIsNew((Page)page))
		return false;
	header->pd_checksum = pg_checksum_page((char *)page, blkno);
	return true;
}
