"""The one client of ipamd's Unix socket: one request, one response, within a deadline.

The plugin, ``vpccni status`` and the chart's probes, the benchmarks and the test harnesses all talk to ipamd
through this module. It is standard library only (the plugin imports it on every exec) and may not import
ipamd. The plugin sends exactly one request line and reads exactly one response line
(:mod:`vpccni.wire.protocol`); a load generator may use :class:`AsyncConnection` or :func:`call_async` from
an event loop. Failures are told apart by type because the caller treats them differently:
:class:`IpamdUnreachable` (nobody listening, or the connection dropped before an answer) and
:class:`IpamdTimeout` (no answer in time) are both "ipamd is not serving" -- ADD retries later, DEL falls back
to local teardown plus a release record -- while a malformed answer is a :class:`vpccni.errors.ProtocolError`
(version skew).

The pod's namespace goes as an open descriptor (``netns_fd``) in the same sendmsg(2) as the start of the
request line (SCM_RIGHTS); the caller keeps and closes its descriptor.

Connecting: nobody listening (ECONNREFUSED, ENOENT) fails at once, so DEL falls back without waiting. A full
listen queue (ipamd there but behind, or stopped) answers EAGAIN at once as well, although the request would
be served: that is retried, with short pauses, until the verb's deadline.
"""

from __future__ import annotations

import _socket  # the C module: `import socket` (selectors, enum wrappers) costs ~2 ms per exec
import sys
import time

from vpccni.errors import ProtocolError, RetryableError
from vpccni.wire.protocol import (
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    ErrorKind,
    Request,
    Response,
    decode_response,
    encode_request,
)

# Annotations only: `import typing` at run time would cost the plugin ~1.5 ms on every exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import socket

CONNECT_TIMEOUT_S = 1.0
DEFAULT_TIMEOUT_S = 5.0
_FIRST_PAUSE_S = 0.001  # between connects refused with EAGAIN; doubles up to the next
_LONGEST_PAUSE_S = 0.05


class IpamdUnreachable(RetryableError):
    """Nothing accepted the connection, or it closed before ipamd answered."""


class IpamdTimeout(IpamdUnreachable):
    """ipamd accepted the request but did not answer within the deadline."""


def call(socket_path: str, request: Request, timeout_s: float = DEFAULT_TIMEOUT_S,
         netns_fd: int | None = None) -> Response:
    """Send ``request`` (with the namespace descriptor ``netns_fd``, if any) and return ipamd's response;
    raise one of the types above on failure."""
    deadline = time.monotonic() + timeout_s
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        _connect(sock, socket_path, deadline, timeout_s)
        try:
            sock.settimeout(_remaining(deadline, socket_path, timeout_s))
            data = encode_request(request)
            sent = _send(sock, data, netns_fd)
            if sent < len(data):  # (an empty send to a peer that already answered and left is EPIPE)
                sock.sendall(data[sent:])
            line = _read_line(sock, deadline, socket_path, timeout_s)
        except TimeoutError:
            raise IpamdTimeout(f"ipamd at {socket_path} did not answer within {timeout_s:g} s") from None
        except OSError as exc:
            raise IpamdUnreachable(
                f"the connection to ipamd at {socket_path} failed: {exc.strerror or exc}"
            ) from None
    finally:
        sock.close()
    return _response(line)


def _connect(sock: _socket.socket, socket_path: str, deadline: float, timeout_s: float) -> None:
    pause = _FIRST_PAUSE_S
    while True:
        sock.settimeout(max(min(CONNECT_TIMEOUT_S, deadline - time.monotonic()), 0.001))
        try:
            sock.connect(socket_path)
            return
        except BlockingIOError:  # EAGAIN: the listen queue is full; the socket stays unconnected
            left = deadline - time.monotonic()
            if left <= 0:
                raise IpamdTimeout(
                    f"ipamd at {socket_path} did not accept the connection within {timeout_s:g} s "
                    "(its queue of waiting connections stayed full)"
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, _LONGEST_PAUSE_S)
        except TimeoutError:
            raise IpamdUnreachable(f"ipamd at {socket_path} did not accept a connection in time") from None
        except OSError as exc:
            raise IpamdUnreachable(
                f"ipamd is not reachable at {socket_path}: {exc.strerror or exc}"
            ) from None


def _send(sock: _socket.socket | socket.socket, data: bytes, netns_fd: int | None) -> int:
    """Send the line, the descriptor on its first bytes; returns how many bytes went (the rest is the
    caller's when the socket does not block)."""
    if netns_fd is None:
        return sock.send(data)
    rights = netns_fd.to_bytes(4, sys.byteorder)  # one C int
    return sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])


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


def _response(line: bytes) -> Response:
    try:
        response = decode_response(line)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ProtocolError(f"malformed response from ipamd: {exc}") from None
    error = response.error
    # An ipamd of another version refusing ours says which it speaks: that message is the clearest answer.
    if response.v != PROTOCOL_VERSION and (error is None or error.kind is not ErrorKind.UNSUPPORTED_VERSION):
        raise ProtocolError(
            f"ipamd answered with protocol version {response.v}, this plugin speaks {PROTOCOL_VERSION}"
        )
    return response


class AsyncConnection:
    """A connection to ipamd from an event loop (load generators, async tests): requests one at a time, each
    with its own namespace descriptor if given. Only these callers come here: the plugin never imports
    asyncio."""

    def __init__(self, sock: socket.socket, socket_path: str) -> None:
        self._sock = sock
        self._path = socket_path
        self._buf = bytearray()

    @classmethod
    async def open(cls, socket_path: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> AsyncConnection:
        import asyncio
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        deadline = time.monotonic() + timeout_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                sock.connect(socket_path)  # asyncio's sock_connect takes a Unix EAGAIN for "in progress"
                return cls(sock, socket_path)
            except BlockingIOError:
                if time.monotonic() > deadline:
                    sock.close()
                    raise IpamdTimeout(f"ipamd at {socket_path} did not accept the connection") from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)
            except OSError as exc:
                sock.close()
                raise IpamdUnreachable(f"ipamd is not reachable at {socket_path}: {exc.strerror}") from None

    async def request(self, request: Request, netns_fd: int | None = None) -> Response:
        return decode_response(await self.exchange(encode_request(request), netns_fd))

    async def exchange(self, data: bytes, netns_fd: int | None = None) -> bytes:
        """Send raw bytes (a test's malformed line, say), the descriptor on their first bytes; return the
        next line received (without its newline)."""
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            try:
                sent = _send(self._sock, data, netns_fd)
                break
            except BlockingIOError:
                await _writable(loop, self._sock)
        if sent < len(data):
            await loop.sock_sendall(self._sock, data[sent:])
        while (end := self._buf.find(b"\n")) < 0:
            chunk = await loop.sock_recv(self._sock, 65536)
            if not chunk:
                raise IpamdUnreachable(f"ipamd at {self._path} closed the connection without answering")
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        return line

    def close(self) -> None:
        self._sock.close()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_writer(sock.fileno(), wake)
    try:
        await future
    finally:
        loop.remove_writer(sock.fileno())


async def call_async(socket_path: str, request: Request, netns_fd: int | None = None) -> Response:
    """The same one-request exchange from inside an event loop (load generators, async tests)."""
    async with await AsyncConnection.open(socket_path) as conn:
        return await conn.request(request, netns_fd)

