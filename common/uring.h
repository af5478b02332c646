/*
 * uring.h - Creating and destroying io_uring rings, for every ring of the
 * process (the cores', the VFS instances', the WAL import's).
 *
 * liburing maps a ring's memory with its own system calls, which no sanitizer
 * intercepts: when one thread tears a ring down and another maps a new one at
 * the same address, ThreadSanitizer sees two threads write the same bytes with
 * nothing ordering them (the kernel's munmap and mmap do, unseen).  One mutex
 * around every setup and teardown gives it that order; rings are made and
 * destroyed at start-up, shutdown and store opening, never per request.
 */
#ifndef AR_COMMON_URING_H
#define AR_COMMON_URING_H

#include <liburing.h>

/* io_uring_queue_init_params (params NULL: none), under the lifecycle mutex. */
__attribute__((warn_unused_result)) int ar_uring_init(unsigned entries, struct io_uring *ring,
						      struct io_uring_params *params);
/* io_uring_queue_exit, under the lifecycle mutex. */
void ar_uring_exit(struct io_uring *ring);

#endif
