/*
 * err.c - Names for Argon's error codes; errno values go to strerror_r.
 */
#include "common/err.h"

#include <string.h>

static const char *const ar_err_names[AR_EMAX - AR_EBASE] = {
	[AR_ECORRUPT - AR_EBASE] = "data corrupted",
	[AR_ECONFIG - AR_EBASE] = "invalid configuration",
	[AR_EPROTO - AR_EBASE] = "protocol violation",
	[AR_ENOTENANT - AR_EBASE] = "unknown tenant",
	[AR_ELOCKED - AR_EBASE] = "data directory is locked by another process",
	[AR_ELIMIT - AR_EBASE] = "limit reached",
	[AR_EBELOWGC - AR_EBASE] = "LSN is below the garbage collection cutoff",
	[AR_ENOTIMELINE - AR_EBASE] = "unknown timeline",
	[AR_EHASCHILDREN - AR_EBASE] = "timeline has child branches",
	[AR_ENOKEY - AR_EBASE] = "key does not exist at this LSN",
	[AR_EREDO - AR_EBASE] = "page redo failed",
};

const char *ar_strerror(int result)
{
	int code = result < 0 ? -result : result;

	if (code == 0)
		return "success";
	if (code > AR_EBASE && code < AR_EMAX)
		return ar_err_names[code - AR_EBASE];
	/* strerror() is thread-safe in glibc for known codes; messages are static. */
	return strerror(code);
}
