"""One node's instance metadata service (IMDSv2), served over HTTP from the EC2 layer's state.

Request rules, as real IMDS with ``HttpTokens=required``:

- ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds: 1..21600`` returns a token;
  a bad or missing TTL is 400; a PUT carrying ``X-Forwarded-For`` is 403 (EC2 refuses tokens requested
  through a proxy); any other method on the token path is 405.
- every ``GET`` needs ``X-aws-ec2-metadata-token`` with a live token, else 401;
- content comes from :mod:`vpccni.localcloud.imds.tree` over the view :class:`ViewHistory` gives for now
  (so lag and stale modes apply to every path at once); an unknown path is 404.

The server is a stdlib ``ThreadingHTTPServer`` in a daemon thread. It normally binds 127.0.0.1:0, but can
also be handed an already-bound socket: a node's namespace serves IMDS at 169.254.169.254:80, and that
socket has to be created inside the namespace by whoever owns it.
"""

from __future__ import annotations

import http.server
import logging
import socket
import threading
import time
from types import TracebackType

from vpccni.localcloud.imds.history import Clock, ViewHistory
from vpccni.localcloud.imds.tokens import TOKEN_HEADER, TTL_HEADER, BadTtl, TokenStore, parse_ttl
from vpccni.localcloud.imds.tree import render
from vpccni.localcloud.model import InstanceView

log = logging.getLogger(__name__)

TOKEN_PATH = "/latest/api/token"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _HttpServer
    server_version = "EC2ws"
    sys_version = ""
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's IMDS fetcher and ipamd reuse connections
    timeout = 60  # seconds an idle keep-alive connection (and its thread) may linger
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms per request on a kept-alive connection).
    disable_nagle_algorithm = True

    def _stopped(self) -> bool:
        # A kept-alive connection outlives shutdown(); once stopped, drop it unanswered, as a dead IMDS would.
        if self.server.stopped.is_set():
            self.close_connection = True
            return True
        return False

    def log_message(self, format: str, *args: object) -> None:
        log.debug("imds %s: " + format, self.server.imds.instance_id, *args)

    def _reply(self, status: int, body: str = "", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drain_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def do_PUT(self) -> None:
        self._drain_body()
        if self._stopped():
            return
        if self.path.split("?", 1)[0] != TOKEN_PATH:
            self._reply(404, "Not Found")
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self._reply(403, "Forbidden")
            return
        try:
            ttl = parse_ttl(self.headers.get(TTL_HEADER))
        except BadTtl as exc:
            self._reply(400, f"Bad Request: {exc}")
            return
        token = self.server.imds.tokens.issue(ttl)
        self._reply(200, token, {TTL_HEADER: str(ttl)})

    def do_GET(self) -> None:
        if self._stopped():
            return
        if self.path.split("?", 1)[0] == TOKEN_PATH:
            self._reply(405, "Method Not Allowed", {"Allow": "PUT"})
            return
        imds = self.server.imds
        if not imds.tokens.valid(self.headers.get(TOKEN_HEADER)):
            self._reply(401, "Unauthorized")
            return
        body = render(imds.view(), self.path, region=imds.region, account_id=imds.account_id)
        if body is None:
            self._reply(404, "Not Found")
        else:
            self._reply(200, body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _not_allowed(self) -> None:
        self._drain_body()
        if self._stopped():
            return
        self._reply(405, "Method Not Allowed", {"Allow": "GET, PUT"})

    do_POST = do_DELETE = do_PATCH = _not_allowed


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    imds: ImdsServer
    stopped: threading.Event


class ImdsServer:
    """IMDSv2 for one instance. ``history`` supplies the (lagged/stale) view; see :class:`ViewHistory`.

    ``sock``: an already-bound socket to serve on (it is put in listening state); otherwise binds
    ``host:port`` (port 0 = any free port).
    """

    def __init__(
        self,
        history: ViewHistory,
        *,
        region: str,
        account_id: str,
        clock: Clock = time.monotonic,
        sock: socket.socket | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.history = history
        self.region = region
        self.account_id = account_id
        self.tokens = TokenStore(clock=clock)
        if sock is None:
            self._httpd = _HttpServer((host, port), _Handler)
        else:
            self._httpd = _HttpServer(sock.getsockname()[:2], _Handler, bind_and_activate=False)
            self._httpd.socket.close()
            self._httpd.socket = sock
            self._httpd.server_address = sock.getsockname()[:2]
            sock.listen(self._httpd.request_queue_size)
        self._httpd.imds = self
        self._httpd.stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def instance_id(self) -> str:
        return self.history.instance_id

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def endpoint(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (what AWS_EC2_METADATA_SERVICE_ENDPOINT takes)."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def lag_s(self) -> float:
        return self.history.lag_s

    @property
    def stale_s(self) -> float:
        return self.history.stale_s

    def set_lag(self, seconds: float) -> None:
        """Show every EC2 change ``seconds`` late."""
        self.history.set_lag(seconds)

    def set_stale(self, seconds: float) -> None:
        """Keep showing an ENI/address/prefix for ``seconds`` after EC2 removed it."""
        self.history.set_stale(seconds)

    def record(self, view: InstanceView) -> None:
        """Note the instance's current EC2 state (the EC2 layer's listener calls this)."""
        self.history.record(view)

    def view(self) -> InstanceView:
        """What this IMDS shows right now."""
        return self.history.view()

    def start(self) -> ImdsServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"imds-{self.instance_id}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.stopped.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ImdsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
