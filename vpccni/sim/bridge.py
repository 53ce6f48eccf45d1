"""botocore's HTTP, short-circuited into the local cloud's WSGI application in the same process.

The simulator drives the real :class:`~vpccni.cloud.aws.provider.AwsProvider` with a real boto3 client, so
requests are serialised, parsed and mapped to vpccni's errors exactly as on a node; only the socket is
missing. botocore emits ``before-send`` with the prepared request just before it would open a connection,
and uses a response returned by a handler instead of sending (botocore's documented hook, the one moto's
own in-process mode uses). :class:`WsgiBridge` turns the prepared request into a WSGI environ, calls the
application (:class:`vpccni.localcloud.ec2.middleware.Ec2Middleware`) and hands back its answer. A
connection the middleware drops (an injected timeout fault) is botocore's ``ConnectionClosedError``, as
a client on a socket would see it.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from vpccni.localcloud.ec2.middleware import wsgi_body

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _Raw:
    """The ``raw`` botocore reads a response body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class _Socket:
    """What the middleware shuts down to drop a connection (werkzeug's ``werkzeug.socket``)."""

    def __init__(self) -> None:
        self.dropped = False

    def shutdown(self, how: int) -> None:
        self.dropped = True


def environ_for(method: str, url: str, headers: Iterable[tuple[str, str | bytes]], body: bytes
                ) -> dict[str, Any]:
    """The WSGI environ of one HTTP request (pure)."""
    parts = urlsplit(url)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": parts.path or "/",
        "QUERY_STRING": parts.query,
        "SERVER_NAME": parts.hostname or "localhost",
        "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": parts.scheme or "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in headers:
        text = value.decode() if isinstance(value, bytes) else value
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = text
        else:
            environ["HTTP_" + key] = text
    environ["CONTENT_LENGTH"] = str(len(body))
    return environ


class WsgiBridge:
    """Serves a boto3 client's requests from ``app`` in process. ``requests`` counts them."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self.requests = 0

    def attach(self, client: Any) -> Any:
        """Route every request of ``client`` here; returns the client."""
        client.meta.events.register("before-send", self._send)
        return client

    def _send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse
        from botocore.exceptions import ConnectionClosedError

        self.requests += 1
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = body.read()
        environ = environ_for(request.method, request.url, request.headers.items(), body)
        sock = _Socket()
        environ["werkzeug.socket"] = sock
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers

        payload = wsgi_body(self._app, environ, start_response)
        if sock.dropped:
            raise ConnectionClosedError(endpoint_url=request.url)
        return AWSResponse(request.url, captured["status"], dict(captured["headers"]), _Raw(payload))
