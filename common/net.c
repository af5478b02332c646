/*
 * net.c - TCP listening sockets from "host:port" strings.
 */
#include "common/net.h"

#include "common/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ar_listen_tcp(const char *address, int backlog, int *fd_out, char err[AR_CONFIG_ERROR_BYTES])
{
	char host[AR_CONFIG_ADDRESS_BYTES];
	uint16_t port;
	struct sockaddr_storage ss;
	socklen_t ss_len;

	memset(&ss, 0, sizeof(ss));
	if (ar_parse_address(address, host, &port) < 0) {
		snprintf(err, AR_CONFIG_ERROR_BYTES, "invalid listen address \"%s\"", address);
		return -EINVAL;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		ss_len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		ss_len = sizeof(*sin6);
	} else {
		snprintf(err, AR_CONFIG_ERROR_BYTES, "invalid listen address \"%s\"", address);
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int rc = -errno;
		snprintf(err, AR_CONFIG_ERROR_BYTES, "could not create socket for \"%s\": %s",
			 address, ar_strerror(rc));
		return rc;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, ss_len) != 0 || listen(fd, backlog) != 0) {
		int rc = -errno;
		snprintf(err, AR_CONFIG_ERROR_BYTES, "could not listen on \"%s\": %s%s", address,
			 ar_strerror(rc),
			 rc == -EADDRINUSE ? " (is another server already running on this port?)"
					   : "");
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

int ar_socket_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
