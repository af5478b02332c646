/*
 * walredo.h - The pipe protocol between the page server and argon-walredo
 * (compute/walredo.c documents the messages).  Plain C: the page server's side
 * (engine/walredo_pool.c) includes it as well as the PostgreSQL-dialect helper.
 */
#ifndef AR_COMPUTE_WALREDO_H
#define AR_COMPUTE_WALREDO_H

enum ar_walredo_msg {
	AR_WALREDO_BEGIN = 'B',
	AR_WALREDO_PUSH = 'P',
	AR_WALREDO_APPLY = 'A',
	AR_WALREDO_GET = 'G',
	AR_WALREDO_PING = 'H',
	AR_WALREDO_MASK = 'M',
	AR_WALREDO_STATS = 'S',
	AR_WALREDO_TEST_FORBIDDEN = 'Z',
};

/* fork u8, spcNode u32, dbNode u32, relNode u32, blkno u32 */
#define AR_WALREDO_TAG_BYTES 17
/* The largest length field accepted: a record of up to 4 MiB (the most one value
 * of the store holds) with its end LSN, and room to spare. */
#define AR_WALREDO_MESSAGE_MAX (4u * 1024 * 1024 + 64 * 1024)

/* The stats reply: a u32 big-endian length, then at most this many bytes of text. */
#define AR_WALREDO_STATS_MAX (64 * 1024)

#endif
