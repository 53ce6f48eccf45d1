"""The one client of ipamd's Unix socket: one request, one response, within a deadline.

The plugin, ``vpccni status`` and the chart's probes, the benchmarks and the test harnesses all talk to ipamd
through this module. It is standard library only (the plugin imports it on every exec) and may not import
ipamd. The plugin sends exactly one request line and reads exactly one response line
(:mod:`vpccni.wire.protocol`); a load generator may use :func:`call_async` from an event loop. Failures are
told apart by type because the caller treats them differently: :class:`IpamdUnreachable` (nobody listening, or
the connection dropped before an answer) and :class:`IpamdTimeout` (no answer in time) are both "ipamd is not
serving" -- ADD retries later, DEL falls back to local teardown plus a release record -- while a malformed
answer is a :class:`vpccni.errors.ProtocolError` (version skew). Connect has its own short timeout: connecting
to a live Unix socket is immediate, so waiting long there only delays the DEL fallback.
"""

from __future__ import annotations

import _socket  # the C module: `import socket` (selectors, enum wrappers) costs ~2 ms per exec
import time

from vpccni.errors import ProtocolError, RetryableError
from vpccni.wire.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    Request,
    Response,
    decode_response,
    encode_request,
)

CONNECT_TIMEOUT_S = 1.0
DEFAULT_TIMEOUT_S = 5.0


class IpamdUnreachable(RetryableError):
    """Nothing accepted the connection, or it closed before ipamd answered."""


class IpamdTimeout(IpamdUnreachable):
    """ipamd accepted the request but did not answer within the deadline."""


def call(socket_path: str, request: Request, timeout_s: float = DEFAULT_TIMEOUT_S) -> Response:
    """Send ``request`` and return ipamd's response; raise one of the types above on failure."""
    deadline = time.monotonic() + timeout_s
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(min(CONNECT_TIMEOUT_S, timeout_s))
        try:
            sock.connect(socket_path)
        except TimeoutError:
            raise IpamdUnreachable(f"ipamd at {socket_path} did not accept a connection in time") from None
        except OSError as exc:
            raise IpamdUnreachable(
                f"ipamd is not reachable at {socket_path}: {exc.strerror or exc}"
            ) from None
        try:
            sock.settimeout(_remaining(deadline, socket_path, timeout_s))
            sock.sendall(encode_request(request))
            line = _read_line(sock, deadline, socket_path, timeout_s)
        except TimeoutError:
            raise IpamdTimeout(f"ipamd at {socket_path} did not answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise IpamdUnreachable(
                f"the connection to ipamd at {socket_path} failed: {exc.strerror or exc}"
            ) from None
    finally:
        sock.close()
    try:
        response = decode_response(line)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProtocolError(f"malformed response from ipamd: {exc}") from None
    if response.v != PROTOCOL_VERSION:
        raise ProtocolError(
            f"ipamd answered with protocol version {response.v}, this plugin speaks {PROTOCOL_VERSION}"
        )
    return response


def _remaining(deadline: float, socket_path: str, timeout_s: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise IpamdTimeout(f"ipamd at {socket_path} did not answer within {timeout_s:g} s")
    return left


def _read_line(sock: _socket.socket, deadline: float, socket_path: str, timeout_s: float) -> bytes:
    buf = bytearray()
    while True:
        sock.settimeout(_remaining(deadline, socket_path, timeout_s))
        chunk = sock.recv(65536)
        if not chunk:
            raise IpamdUnreachable(f"ipamd at {socket_path} closed the connection without answering")
        buf += chunk
        end = buf.find(b"\n")
        if end >= 0:
            return bytes(buf[:end])
        if len(buf) > MAX_LINE_BYTES:
            raise ProtocolError(f"response from ipamd exceeds {MAX_LINE_BYTES} bytes without a newline")


async def call_async(socket_path: str, request: Request) -> Response:
    """The same one-request exchange from inside an event loop (load generators, async tests)."""
    import asyncio  # only the load generators come here; the plugin never imports asyncio

    reader, writer = await asyncio.open_unix_connection(socket_path, limit=MAX_LINE_BYTES)
    try:
        writer.write(encode_request(request))
        line = await reader.readline()
    finally:
        writer.close()
    if not line:
        raise IpamdUnreachable(f"ipamd at {socket_path} closed the connection without answering")
    return decode_response(line)
