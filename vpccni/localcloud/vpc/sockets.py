"""Listening sockets that live in another network namespace, for serving a node's IMDS and EC2 endpoint.

A socket belongs to the namespace it was created in, whichever thread or namespace later uses it. So a
short-lived thread enters the node's namespace (:func:`vpccni.net.nsutil.run_in_netns`), creates, binds
and listens, and hands the socket back; the server threads that accept on it stay in the root namespace
and need no privileges. This is how a process inside the node reaches 169.254.169.254:80 while the IMDS
server is a thread of this process.
"""

from __future__ import annotations

import socket

from vpccni.net.nsutil import run_in_netns


def listening_socket(netns: str, host: str, port: int = 0, *, backlog: int = 128) -> socket.socket:
    """A TCP socket bound to ``host:port`` inside ``netns`` (name or path) and listening.

    Port 0 picks a free port in that namespace; read it with ``getsockname()``.
    """

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
        return sock

    return run_in_netns(netns, make)


def endpoint_of(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (valid only inside the socket's namespace)."""
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"
