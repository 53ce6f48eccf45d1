"""Talking to a running ipamd from another process: its Unix socket and its introspection API.

``vpccni status``, the chart's probes, ``vpccni bench churn`` and the test harnesses use this; it may not
import ipamd (the import rules keep the library apart from the daemon), so it speaks the wire protocol
(:mod:`vpccni.wire.protocol`) and plain HTTP. Blocking and standard library only.

Introspection addresses are INTROSPECTION_BIND_ADDRESS's syntax: ``host:port`` or ``unix:<path>``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from typing import Any

from vpccni.wire.protocol import Request, Response, decode_response, encode_request

DEFAULT_TIMEOUT_S = 5.0


class IpamdUnreachable(Exception):
    """ipamd did not answer (no socket, refused, closed without a reply, timed out)."""


def call(socket_path: str, req: Request, timeout_s: float = DEFAULT_TIMEOUT_S) -> Response:
    """One request over ipamd's socket, one response."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(socket_path)
            sock.sendall(encode_request(req))
            with sock.makefile("rb") as stream:
                line = stream.readline()
    except OSError as exc:
        raise IpamdUnreachable(f"{socket_path}: {exc.strerror or exc}") from exc
    if not line:
        raise IpamdUnreachable(f"{socket_path}: closed without an answer")
    try:
        return decode_response(line)
    except ValueError as exc:
        raise IpamdUnreachable(f"{socket_path}: unreadable answer: {exc}") from exc


async def call_async(socket_path: str, req: Request) -> Response:
    """The same one-request exchange from inside an event loop (load generators, async tests)."""
    reader, writer = await asyncio.open_unix_connection(socket_path)
    try:
        writer.write(encode_request(req))
        return decode_response(await reader.readline())
    finally:
        writer.close()


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
