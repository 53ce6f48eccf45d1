"""ipamd's Unix-socket server: one JSON request line in, one JSON response line out (vpccni.wire.protocol).

The socket (default ``/run/vpccni/ipamd.sock``) is mode 0600 from the moment it appears: it is bound under
a temporary name, chmodded, then renamed into place. A missing parent directory is created 0700 (an
existing one is left as it is: it may be shared). A stale socket file left by a dead ipamd is replaced;
if a live ipamd answers on the path, or holds the instance lock next to it, start() refuses.

A connection may carry several requests; they are answered in order. Requests on different connections
run concurrently (the handler serialises per key). The hot path does no logging above DEBUG and no file
I/O apart from the checkpoint's shared write.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
import time
from dataclasses import dataclass

from ipamd.serve.handler import RequestHandler
from vpccni.errors import PermanentError
from vpccni.wire.protocol import (
    DEFAULT_SOCKET_PATH,
    MAX_LINE_BYTES,
    ErrorKind,
    Response,
    decode_request,
    encode_response,
)

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class ServerSettings:
    socket_path: str = DEFAULT_SOCKET_PATH  # VPCCNI_SOCKET_PATH: where the plugin connects
    shutdown_grace_s: float = 5.0  # seconds in-flight requests get to finish on close()
    probe_timeout_s: float = 1.0  # seconds to wait for a live ipamd to accept on an existing socket


class ServerStartError(PermanentError):
    """The socket cannot be served (another ipamd is live, or the path is unusable)."""


class IpamServer:
    def __init__(self, handler: RequestHandler, settings: ServerSettings | None = None) -> None:
        self.handler = handler
        self.settings = settings or ServerSettings()
        self._server: asyncio.Server | None = None
        self._lock_fd: int | None = None
        self._socket_ino: int | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # connections in the middle of a request
        self._closing = False

    @property
    def socket_path(self) -> str:
        return self.settings.socket_path

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
            sock = self._bind(path)
            self._server = await asyncio.start_unix_server(self._serve_connection, sock=sock,
                                                           limit=MAX_LINE_BYTES + 1)
        except BaseException:
            self._release_instance_lock()
            raise
        log.info("ipamd serving on %s", path)

    async def close(self) -> None:
        """Stop accepting; requests in flight finish (up to the grace), idle connections are dropped;
        remove the socket."""
        if self._server is not None:
            self._closing = True
            self._server.close()
            for task in self._connections - self._busy:
                task.cancel()
            if self._connections:
                grace = self.settings.shutdown_grace_s
                _, pending = await asyncio.wait(set(self._connections), timeout=grace)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(OSError):
                if os.stat(self.socket_path).st_ino == self._socket_ino:
                    os.unlink(self.socket_path)
        self._release_instance_lock()

    # --- connections -----------------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while not self._closing:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than MAX_LINE_BYTES: the framing is lost, close after saying so
                    writer.write(encode_response(Response.failure(
                        ErrorKind.BAD_REQUEST, f"request line longer than {MAX_LINE_BYTES} bytes")))
                    await writer.drain()
                    break
                if not line:
                    break
                self._busy.add(task)
                try:
                    writer.write(encode_response(await self._answer(line, time.monotonic())))
                    await writer.drain()
                finally:
                    self._busy.discard(task)
        except (ConnectionResetError, BrokenPipeError, asyncio.CancelledError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, line: bytes, received_at: float) -> Response:
        try:
            req = decode_request(line)
        except (ValueError, TypeError) as exc:
            return Response.failure(ErrorKind.BAD_REQUEST, f"malformed request: {exc}")
        try:
            return await self.handler.handle(req, received_at)
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
