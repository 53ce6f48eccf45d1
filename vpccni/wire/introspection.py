"""Reading a running ipamd's introspection and metrics endpoints over HTTP (standard library only).

``vpccni status``, the benchmarks and the test harnesses use this. Addresses are INTROSPECTION_BIND_ADDRESS's
syntax: ``host:port`` or ``unix:<path>``. A failure to reach the endpoint, or a non-200 answer where a
document was expected, raises :class:`~vpccni.wire.client.IpamdUnreachable`.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from vpccni.wire.client import DEFAULT_TIMEOUT_S, IpamdUnreachable


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _connection(address: str, timeout_s: float) -> http.client.HTTPConnection:
    if address.startswith("unix:"):
        return _UnixHTTPConnection(address[len("unix:") :], timeout_s)
    host, _, port = address.rpartition(":")
    return http.client.HTTPConnection(host.strip("[]") or "127.0.0.1", int(port), timeout=timeout_s)


def http_get(address: str, path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[int, bytes]:
    """(status, body) of ``GET path`` on an introspection or metrics address."""
    conn = _connection(address, timeout_s)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise IpamdUnreachable(f"{address}{path}: {exc}") from exc
    finally:
        conn.close()


def introspect(address: str, path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """The JSON document at ``path`` (e.g. ``/v1/pool``); a non-200 answer raises IpamdUnreachable."""
    status, body = http_get(address, path, timeout_s)
    if status != 200:
        raise IpamdUnreachable(f"{address}{path}: HTTP {status}: {body[:200].decode(errors='replace')}")
    return json.loads(body)
