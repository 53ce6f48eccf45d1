"""ipamd's Unix-socket server: one JSON request line in, one JSON response line out (vpccni.wire.protocol).

The socket (default ``/run/vpccni/ipamd.sock``) is mode 0600 from the moment it appears: it is bound under
a temporary name, chmodded, then renamed into place. A missing parent directory is created 0700 (an
existing one is left as it is: it may be shared). A stale socket file left by a dead ipamd is replaced;
if a live ipamd answers on the path, or holds the instance lock next to it, start() refuses.

A connection may carry several requests; they are answered in order. Requests on different connections
run concurrently (the handler serialises per key). A request line may bring its pod's network namespace as
a descriptor (:mod:`ipamd.serve.connections` reads them); every received descriptor is closed once its
answer is sent, or when the connection ends, whatever happened. The hot path does no logging above DEBUG
and no file I/O apart from the checkpoint's shared write.

Local clients cannot starve the daemon: the listen queue is long (a burst of plugins waits in it instead of
being refused), at most ``max_connections`` are open -- fewer when RLIMIT_NOFILE would not leave
``reserved_fds`` descriptors free for the work that must not fail (checkpoint writes, release-record replay,
plumbing) -- and when that many are open a new one takes the place of the longest idle one (idle: no
complete request yet). A connection idle for ``idle_timeout_s`` is closed. If accept(2) still runs out of
descriptors, the longest idle connection is closed and accepting pauses briefly; it never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import resource
import socket
import stat
import time
from dataclasses import dataclass

from ipamd.serve.connections import Inbox, Received, next_line, readable
from ipamd.serve.handler import RequestHandler
from vpccni.errors import PermanentError
from vpccni.wire.protocol import (
    DEFAULT_SOCKET_PATH,
    MAX_LINE_BYTES,
    SUPPORTED_VERSIONS,
    ErrorKind,
    Response,
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
# A connection may hold its socket, the namespace it sent and the plumbing thread's copy of it.
FDS_PER_CONNECTION = 3
ACCEPT_PAUSE_S = 0.1  # after accept(2) failed for want of resources
WARN_EVERY_S = 10.0


@dataclass(frozen=True)
class ServerSettings:
    socket_path: str = DEFAULT_SOCKET_PATH  # VPCCNI_SOCKET_PATH: where the plugin connects
    shutdown_grace_s: float = 5.0  # seconds in-flight requests get to finish on close()
    probe_timeout_s: float = 1.0  # seconds to wait for a live ipamd to accept on an existing socket
    backlog: int = 1024  # listen(2) queue: connections waiting while ipamd is busy (the kernel caps it)
    max_connections: int = 1024  # open connections at most (fewer if RLIMIT_NOFILE is low)
    idle_timeout_s: float = 30.0  # a connection without a complete request (or not reading) this long: closed
    reserved_fds: int = 128  # descriptors no client connection may take


class ServerStartError(PermanentError):
    """The socket cannot be served (another ipamd is live, or the path is unusable)."""


class _Connection:
    __slots__ = ("sock", "task", "idle_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.task: asyncio.Task[None] | None = None
        self.idle_since: float | None = time.monotonic()  # None while a request is being answered


def connection_limit(settings: ServerSettings) -> int:
    """How many connections may be open at once: ``max_connections``, or fewer if RLIMIT_NOFILE (as it is
    now, with the descriptors open now) would otherwise leave less than ``reserved_fds`` free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = settings.reserved_fds
    room = soft - in_use - settings.reserved_fds
    return max(1, min(settings.max_connections, room // FDS_PER_CONNECTION))


class IpamServer:
    def __init__(self, handler: RequestHandler, settings: ServerSettings | None = None) -> None:
        self.handler = handler
        self.settings = settings or ServerSettings()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._lock_fd: int | None = None
        self._socket_ino: int | None = None
        self._connections: set[_Connection] = set()
        self._room = asyncio.Event()  # set whenever a connection ends
        self.max_connections = self.settings.max_connections
        self._closing = False
        self._warned_at = -WARN_EVERY_S

    @property
    def socket_path(self) -> str:
        return self.settings.socket_path

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        """Claim the socket path and start accepting. Raises ServerStartError naming the problem."""
        path = self.socket_path
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ServerStartError(f"cannot create socket directory {parent}: {exc.strerror}") from exc
        self._take_instance_lock(path)
        try:
            await self._refuse_if_live(path)
            self._listener = self._bind(path)
            self._listener.listen(self.settings.backlog)
        except BaseException:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._release_instance_lock()
            raise
        self.max_connections = connection_limit(self.settings)
        self._accepting = asyncio.create_task(self._accept_forever(self._listener), name="ipamd-accept")
        log.info("ipamd serving on %s (at most %d connections)", path, self.max_connections)

    async def close(self) -> None:
        """Stop accepting; requests in flight finish (up to the grace), idle connections are dropped;
        remove the socket."""
        if self._listener is not None:
            self._closing = True
            if self._accepting is not None:
                self._accepting.cancel()
                await asyncio.gather(self._accepting, return_exceptions=True)
                self._accepting = None
            self._listener.close()  # clients still queued get their connection reset, not a hang
            self._listener = None
            for conn in self._connections:
                if conn.idle_since is not None and conn.task is not None:
                    conn.task.cancel()
            tasks = {conn.task for conn in self._connections if conn.task is not None}
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.settings.shutdown_grace_s)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(OSError):
                if os.stat(self.socket_path).st_ino == self._socket_ino:
                    os.unlink(self.socket_path)
        self._release_instance_lock()

    # --- accepting -------------------------------------------------------------------------------

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await readable(loop, listener)  # somebody is waiting
            while len(self._connections) >= self.max_connections and not self._evict_idle():
                self._room.clear()
                await self._room.wait()
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue  # gone again meanwhile
            except OSError as exc:
                await self._accept_failed(exc)
                continue
            sock.setblocking(False)
            conn = _Connection(sock)
            self._connections.add(conn)
            conn.task = asyncio.create_task(self._serve_connection(conn))

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest (it has sent no complete request); False if none is."""
        idle = [c for c in self._connections if c.idle_since is not None and c.task is not None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        self._connections.discard(oldest)  # its slot is free now; its task closes its socket
        assert oldest.task is not None
        oldest.task.cancel()
        return True

    async def _accept_failed(self, exc: OSError) -> None:
        short = exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
        if short:
            self._evict_idle()  # frees a descriptor for the next accept
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("accepting a connection on %s failed: %s (%d open)%s", self.socket_path,
                        exc.strerror or exc, len(self._connections),
                        "; closed the longest idle one" if short else "")
        await asyncio.sleep(ACCEPT_PAUSE_S)  # the listener stays readable: do not spin on it

    # --- connections -----------------------------------------------------------------------------

    async def _serve_connection(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        inbox = Inbox(MAX_LINE_BYTES)
        timeout = self.settings.idle_timeout_s
        try:
            while not self._closing:
                conn.idle_since = time.monotonic()
                async with asyncio.timeout(timeout):
                    line = await next_line(loop, conn.sock, inbox)
                if line is None:
                    break
                conn.idle_since = None
                try:
                    response = await self._answer(line, time.monotonic())
                    async with asyncio.timeout(timeout):  # a client that never reads is not waited for
                        await loop.sock_sendall(conn.sock, encode_response(response))
                finally:
                    line.close()
                if line.overlong:  # the framing is lost: close after saying so
                    break
        except (OSError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            inbox.close()
            conn.sock.close()
            self._connections.discard(conn)
            self._room.set()

    async def _answer(self, line: Received, received_at: float) -> Response:
        if line.overlong:
            return Response.failure(ErrorKind.BAD_REQUEST, f"request line longer than {MAX_LINE_BYTES} bytes")
        try:
            req = decode_request(bytes(line.data))
        except Exception as exc:  # whatever the bytes are, the client hears why (no traceback: not a bug)
            return Response.failure(ErrorKind.BAD_REQUEST, f"malformed request: {exc}")
        if line.problem:
            refusal = Response.failure(ErrorKind.BAD_REQUEST, line.problem)
            return refusal._replace(v=req.v) if req.v in SUPPORTED_VERSIONS else refusal
        try:
            return await self.handler.handle(req, received_at, line.netns_fd)
        except Exception as exc:  # a bug must cost one request, not the connection or the daemon
            log.exception("%s %s failed", req.op, req.key)
            self.handler.metrics.error("handler")
            return Response.failure(ErrorKind.INTERNAL, f"ipamd failed to handle {req.op}: {exc}")

    # --- socket path -----------------------------------------------------------------------------

    def _take_instance_lock(self, path: str) -> None:
        lock_path = path + LOCK_SUFFIX
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise ServerStartError(f"another ipamd holds {lock_path}; refusing to start") from None
            raise ServerStartError(f"cannot lock {lock_path}: {exc.strerror}") from exc
        self._lock_fd = fd

    def _release_instance_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock; the file stays (unlinking would race)
            self._lock_fd = None

    async def _refuse_if_live(self, path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ServerStartError(f"{path} exists and is not a socket; refusing to replace it")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path),
                                               self.settings.probe_timeout_s)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("replacing stale socket %s", path)
            return
        except (TimeoutError, OSError) as exc:
            raise ServerStartError(f"{path}: cannot tell whether another ipamd is live ({exc}); "
                                   f"refusing to start") from exc
        writer.close()
        raise ServerStartError(f"another ipamd is answering on {path}; refusing to start")

    def _bind(self, path: str) -> socket.socket:
        temp = f"{path}.{os.getpid()}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(temp)
            os.chmod(temp, 0o600)
            os.rename(temp, path)  # atomically replaces a stale socket; never visible with wider mode
            self._socket_ino = os.stat(path).st_ino
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise ServerStartError(f"cannot bind {path}: {exc.strerror}") from exc
        return sock
