"""Reading one client connection: request lines, each with the descriptors that came with it.

asyncio's streams read with recv(2) and never see ancillary data, so a connection is read here with
recvmsg(2) on the event loop's readiness callbacks. Received descriptors are close-on-exec and always owned
by exactly one holder: the :class:`Inbox` until a line is taken, then that :class:`Received` (whose
``close`` the server calls once the answer is sent). Nothing here trusts the peer: at most one descriptor
is kept per line (more make the request malformed and are closed at once), and descriptors the kernel had
to drop (more than :data:`MAX_FDS_PER_READ` in one read) are reported, never half-used.

Which line a descriptor belongs to: the kernel hands descriptors over with the read that returns the first
byte of the sendmsg(2) that carried them, and ends that read no later than the end of that sendmsg's
data (a Unix stream read stops after a message with rights). Clients start such a sendmsg at the start of
a line, so the descriptors belong to the last line this read completes if its data ends with a newline,
and otherwise to the line still in progress. A client that does otherwise only mislabels its own requests.
"""

from __future__ import annotations

import array
import asyncio
import os
import socket
from collections import deque

READ_BYTES = 65536
MAX_FDS_PER_READ = 4  # room in the control buffer; the kernel closes any beyond it and says so
_ANCILLARY_BYTES = socket.CMSG_SPACE(MAX_FDS_PER_READ * array.array("i").itemsize)
_INT_BYTES = array.array("i").itemsize


class Received:
    """One request line as received: its bytes (no newline), its descriptors, and what was wrong with how it
    came (``problem``: descriptors dropped or too many; ``overlong``: no newline within the limit)."""

    __slots__ = ("data", "fds", "problem", "overlong")

    def __init__(self, data: bytes | bytearray = b"") -> None:
        self.data = bytearray(data)
        self.fds: list[int] = []
        self.problem = ""
        self.overlong = False

    @property
    def netns_fd(self) -> int | None:
        return self.fds[0] if self.fds else None

    def attach(self, fds: list[int], truncated: bool) -> None:
        """Take ``fds`` (closing any beyond the first this line holds); ``truncated``: some were dropped."""
        if truncated and not self.problem:
            self.problem = ("descriptors that came with the request were dropped (more than "
                            f"{MAX_FDS_PER_READ} at once, or none free in ipamd); a request carries one: its "
                            "network namespace")
        for fd in fds:
            if self.fds:  # kept: the first; the rest never reach the handler
                os.close(fd)
                self.problem = self.problem or "more than one descriptor came with one request"
            else:
                self.fds.append(fd)

    def close(self) -> None:
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)


class Inbox:
    """Bytes and descriptors read from one connection, cut into :class:`Received` lines."""

    def __init__(self, max_line_bytes: int) -> None:
        self._max = max_line_bytes
        self._partial = Received()
        self._ready: deque[Received] = deque()
        self._broken = False  # a line overran the limit: the framing is lost, nothing after it is read

    def feed(self, data: bytes, fds: list[int], truncated: bool = False) -> None:
        """One read's data and descriptors (``truncated``: the kernel dropped some of them)."""
        *complete, rest = data.split(b"\n")
        if complete:
            first, self._partial = self._partial, Received()
            first.data += complete[0]
            lines = [first, *(Received(line) for line in complete[1:])]
            if not rest:  # the read ended with a newline: its descriptors came with the last line it ended
                lines[-1].attach(fds, truncated)
                fds, truncated = [], False
            for line in lines:
                if self._broken:
                    line.close()
                    continue
                if len(line.data) > self._max:
                    line.overlong, line.data, self._broken = True, bytearray(), True
                self._ready.append(line)
        if self._broken:
            for fd in fds:
                os.close(fd)
            return
        self._partial.data += rest
        self._partial.attach(fds, truncated)
        if len(self._partial.data) > self._max:
            self._partial.overlong, self._partial.data, self._broken = True, bytearray(), True
            self._ready.append(self._partial)
            self._partial = Received()

    def pop(self) -> Received | None:
        """The next complete line (the caller owns it, and its descriptors, from now on), or None."""
        return self._ready.popleft() if self._ready else None

    def close(self) -> None:
        """Close every descriptor not yet taken."""
        while self._ready:
            self._ready.popleft().close()
        self._partial.close()


async def next_line(loop: asyncio.AbstractEventLoop, sock: socket.socket, inbox: Inbox) -> Received | None:
    """The next request line of ``sock`` (non-blocking), or None at end of stream."""
    while (line := inbox.pop()) is None:
        try:
            data, ancillary, flags, _ = sock.recvmsg(READ_BYTES, _ANCILLARY_BYTES, socket.MSG_CMSG_CLOEXEC)
        except (BlockingIOError, InterruptedError):
            await readable(loop, sock)
            continue
        except ConnectionError:
            return None
        fds = _descriptors(ancillary)
        if not data:
            for fd in fds:
                os.close(fd)
            return None
        inbox.feed(data, fds, truncated=bool(flags & socket.MSG_CTRUNC))
    return line


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % _INT_BYTES])
    return list(fds)


async def readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Until ``sock`` can be read (or accepted from) without blocking."""
    future = loop.create_future()
    fd = sock.fileno()
    loop.add_reader(fd, _wake, future)
    try:
        await future
    finally:
        loop.remove_reader(fd)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
