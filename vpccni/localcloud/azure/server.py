"""The local Azure's ARM endpoint: https on a loopback port, with its own CA, and the control plane.

``https://127.0.0.1:<port>`` serves the ARM routes of :mod:`~vpccni.localcloud.azure.service` and,
under ``/_localcloud/``, the EC2 local cloud's control plane (faults, throttle, latency, counters;
:mod:`vpccni.localcloud.ec2.control` documents the routes), so the same control client drives both
clouds. The TLS handshake runs in the request's own thread (a stalled client never blocks the accept
loop). A fault with ``timeout_s`` holds the request that long, then closes the connection unanswered.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from types import TracebackType

from vpccni.localcloud.azure.service import Answer, ArmService
from vpccni.localcloud.azure.tls import TlsFiles
from vpccni.localcloud.ec2.control import CONTROL_PREFIX, ControlPlane

log = logging.getLogger(__name__)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _TlsServer
    protocol_version = "HTTP/1.1"  # azure-core keeps connections alive
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    timeout = 30  # an idle kept-alive connection (and its thread) lingers at most this long
    disable_nagle_algorithm = True

    def handle(self) -> None:
        try:
            self.request.do_handshake()
            super().handle()
        except (OSError, ssl.SSLError) as error:  # a client that went away or spoke no TLS
            log.debug("local Azure: connection ended: %s", error)
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        log.debug("local Azure ARM: " + format, *args)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _serve(self) -> None:
        body = self._body()
        if self.server.stopped.is_set():
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        if path.startswith(CONTROL_PREFIX):
            status, data = self.server.control.handle(self.command, path, body)
            self._send(status, data, {})
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer: Answer = self.server.service.handle(self.command, path, query, headers, body)
        if answer.drop_after_s is not None:
            self.server.stopped.wait(answer.drop_after_s)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.request.shutdown(socket.SHUT_RDWR)
            return
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        self._send(answer.status, data, answer.headers)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _serve


class _TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        context: ssl.SSLContext,
        service: ArmService,
        control: ControlPlane,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(address, _Handler, bind_and_activate=sock is None)
        if sock is not None:  # already bound (in a node's namespace) and listening
            self.socket.close()
            self.socket = sock
        self.context = context
        self.service = service
        self.control = control
        self.stopped = threading.Event()

    def get_request(self) -> tuple[socket.socket, object]:
        sock, address = self.socket.accept()
        sock.settimeout(_Handler.timeout)
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class ArmServer:
    """Serves one :class:`ArmService` over https on ``host``:``port`` (0 = any free port)."""

    def __init__(
        self,
        service: ArmService,
        control: ControlPlane,
        tls: TlsFiles,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.service = service
        self.tls = tls
        self._server = _TlsServer((host, port), tls.server_context(), service, control)
        bound_host, bound_port = self._server.server_address[:2]
        self.endpoint = f"https://{bound_host!s}:{bound_port}"
        service.endpoint = self.endpoint
        self._thread: threading.Thread | None = None
        self._extra: list[tuple[_TlsServer, threading.Thread]] = []
        self._control = control

    def start(self) -> ArmServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                name="localazure-arm",
                kwargs={"poll_interval": 0.1},
                daemon=True,
            )
            self._thread.start()
        return self

    def serve_on(self, sock: socket.socket) -> Callable[[], None]:
        """Serve this same endpoint also on ``sock``, bound and listening — e.g. 127.0.0.1:<port> made inside
        a node's network namespace, where the main port cannot be reached (the certificate names
        127.0.0.1, so it is valid there too). Returns the function that stops this listener; :meth:`stop`
        stops it too. ``sock`` is taken over."""
        extra = _TlsServer(sock.getsockname()[:2], self.tls.server_context(), self.service, self._control,
                           sock=sock)
        thread = threading.Thread(target=extra.serve_forever, name="localazure-arm-extra",
                                  kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        entry = (extra, thread)
        self._extra.append(entry)

        def stop_listener() -> None:
            if entry in self._extra:
                self._extra.remove(entry)
                _stop_server(extra, thread)

        return stop_listener

    def stop(self) -> None:
        for extra, thread in list(self._extra):
            _stop_server(extra, thread)
        self._extra.clear()
        self._server.stopped.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    @property
    def stopping(self) -> threading.Event:
        return self._server.stopped

    def __enter__(self) -> ArmServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _stop_server(server: _TlsServer, thread: threading.Thread) -> None:
    server.stopped.set()
    server.shutdown()
    thread.join(timeout=5)
    server.server_close()
