/*
 * err.h - Argon's error codes.
 *
 * Actions return int: 0 on success, a negative errno (-ENOMEM, -EIO, ...) or a
 * negative Argon code below.  Argon's codes start far above any errno so the two
 * ranges never meet.  ar_strerror() names both.
 */
#ifndef AR_COMMON_ERR_H
#define AR_COMMON_ERR_H

enum ar_err {
	AR_EBASE = 10000,
	AR_ECORRUPT,   /* bytes from disk or network fail a check */
	AR_ECONFIG,    /* configuration rejected */
	AR_EPROTO,     /* malformed protocol message */
	AR_ENOTENANT,  /* unknown tenant */
	AR_ELOCKED,    /* data directory held by another process */
	AR_ELIMIT,     /* a limit in common/limits.h was reached */
	AR_EBELOWGC,   /* an LSN below the timeline's GC cutoff */
	AR_ENOTIMELINE, /* unknown timeline */
	AR_EHASCHILDREN, /* the timeline has branches */
	AR_ENOKEY,     /* the key does not exist at that LSN */
	AR_EREDO,      /* PostgreSQL's redo failed on a page (argon-walredo) */
	AR_EMAX,
};

/* The message for a result code (0, -errno or -AR_E*); never NULL. */
const char *ar_strerror(int result);

#endif
