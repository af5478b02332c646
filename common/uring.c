/*
 * uring.c - Ring setup and teardown under one process-wide mutex (uring.h says
 * why).
 */
#include "common/uring.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t lifecycle_mu = PTHREAD_MUTEX_INITIALIZER;

int ar_uring_init(unsigned entries, struct io_uring *ring, struct io_uring_params *params)
{
	struct io_uring_params none;
	memset(&none, 0, sizeof(none));
	pthread_mutex_lock(&lifecycle_mu);
	int rc = io_uring_queue_init_params(entries, ring, params ? params : &none);
	pthread_mutex_unlock(&lifecycle_mu);
	return rc;
}

void ar_uring_exit(struct io_uring *ring)
{
	pthread_mutex_lock(&lifecycle_mu);
	io_uring_queue_exit(ring);
	pthread_mutex_unlock(&lifecycle_mu);
}
