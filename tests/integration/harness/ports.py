"""Free loopback TCP ports for test daemons.

The kernel picks the port (bind to 127.0.0.1:0), so two processes running
tests in parallel do not collide by choice.  The socket is closed before the
daemon binds, which leaves a small window for another process to take the
port; the daemon wrappers notice "address already in use" and retry with new
ports.
"""

import socket

LOOPBACK = "127.0.0.1"


def free_port(host=LOOPBACK):
    """Return one TCP port on host that was free a moment ago."""
    return free_ports(1, host)[0]


def free_ports(count, host=LOOPBACK):
    """Return count distinct TCP ports on host, all free a moment ago.

    All sockets stay bound until every port is chosen, so the kernel cannot
    hand out the same port twice within one call.
    """
    if count < 1:
        raise ValueError("count must be positive, not %r" % count)
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port, host=LOOPBACK, timeout=0.5):
    """Does something accept TCP connections on host:port?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
