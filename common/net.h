/*
 * net.h - Listening sockets.  Bound once by the main thread, before the cores
 * start, so a port in use is one clear error at startup.
 */
#ifndef AR_COMMON_NET_H
#define AR_COMMON_NET_H

#include "common/config.h"

/* address: "host:port" (see ar_parse_address).  The socket is non-blocking,
 * close-on-exec, SO_REUSEADDR, listening.  On error, err holds one line. */
__attribute__((warn_unused_result))
int ar_listen_tcp(const char *address, int backlog, int *fd_out, char err[AR_CONFIG_ERROR_BYTES]);

/* The port a listening socket is bound to (for "host:0" in tests). */
int ar_socket_port(int fd);

#endif
