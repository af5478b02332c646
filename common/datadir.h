/*
 * datadir.h - The page server's data directory and its lock file (the page server
 * and argonctl's offline commands both take it).
 *
 * One page server per data directory: "argon.lock" holds an exclusive flock and
 * the owner's pid for as long as the process lives; the kernel drops the lock if
 * the process dies, so a stale file never blocks a restart.
 */
#ifndef AR_COMMON_DATADIR_H
#define AR_COMMON_DATADIR_H

#include "common/config.h"

struct ar_datadir {
	int dir_fd;
	int lock_fd;
};

/* Create the directory if missing, prove it writable, take the lock.  On error,
 * err holds one line. */
__attribute__((warn_unused_result))
int ar_datadir_open(const char *path, struct ar_datadir *dd, char err[AR_CONFIG_ERROR_BYTES]);
void ar_datadir_close(struct ar_datadir *dd);

#endif
