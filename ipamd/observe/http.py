"""ipamd's two HTTP endpoints: introspection (INTROSPECTION_BIND_ADDRESS) and Prometheus metrics
(VPCCNI_METRICS_BIND_ADDRESS), as aws-node serves them on 127.0.0.1:61679 and :61678.

Introspection routes: ``/`` (``{"AvailableCommands": [...]}``, aws's), ``/v1/enis`` (aws's shape),
``/v1/pool`` (ours), ``/v1/ipamd-env-settings``, ``/v1/networkutils-env-settings``, ``/healthz``
(200 while every supervised task runs and the event loop answers) and ``/readyz`` (200 when an ADD would
get an address now; 503 with the reason otherwise). Metrics: ``/metrics`` in the text format.

The server is a small GET-only HTTP/1.0 responder on asyncio streams (TCP, or a Unix socket for
``unix:<path>``): one request per connection, 5 s to send it (aws's read timeout), bodies built by the
route from memory. It runs on ipamd's event loop, so a route sees a consistent datastore without locks;
that is also why routes must stay cheap (no cloud call, no disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import Callable
from typing import Any

from vpccni.config.envparse import split_host_port

log = logging.getLogger("ipamd.observe.http")

READ_TIMEOUT_S = 5.0
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Reply = tuple[int, str, bytes]  # status, content type, body
Route = Callable[[], Reply]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error", 503: "Service Unavailable"}


def json_reply(doc: Any, status: int = 200) -> Reply:
    return status, JSON_TYPE, (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


class HttpEndpoint:
    """One listening HTTP endpoint with fixed GET routes."""

    def __init__(self, name: str, bind: str, routes: dict[str, Route]) -> None:
        self.name = name
        self.bind = bind
        self.routes = routes
        self._server: asyncio.Server | None = None
        self._unix_path: str | None = None

    async def start(self) -> None:
        if self.bind.startswith("unix:"):
            path = self.bind[len("unix:"):]
            self._remove_stale_socket(path)
            os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
            self._server = await asyncio.start_unix_server(self._serve, path=path)
            os.chmod(path, 0o600)
            self._unix_path = path
        else:
            host, port = split_host_port(self.bind)
            self._server = await asyncio.start_server(self._serve, host=host.strip("[]") or None, port=port,
                                                      reuse_address=True)
        log.info("%s serving on %s", self.name, self.bind)

    @property
    def address(self) -> str:
        """Where it listens (with the real port when bound to port 0)."""
        if self._unix_path is not None or self._server is None:
            return self.bind
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def serve_forever(self) -> None:
        """Runs while the endpoint serves (a supervised task); returns only if it stops by itself."""
        if self._server is None:
            raise RuntimeError(f"{self.name} endpoint was not started")
        await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)
            self._unix_path = None

    @staticmethod
    def _remove_stale_socket(path: str) -> None:
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise OSError(f"{path} exists and is not a socket")
        os.unlink(path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            reply, method = self._answer(head)
            status, content_type, body = reply
            headers = (f"HTTP/1.0 {status} {_REASONS.get(status, 'Error')}\r\n"
                       f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                       "Connection: close\r\n\r\n")
            writer.write(headers.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[Reply, str]:
        try:
            method, target, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except ValueError:
            return json_reply({"error": "malformed request line"}, 400), "GET"
        if method not in ("GET", "HEAD"):
            return json_reply({"error": f"method {method} not allowed"}, 405), method
        path = target.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        route = self.routes.get(path)
        if route is None:
            missing = {"error": f"no route {path}", "AvailableCommands": sorted(self.routes)}
            return json_reply(missing, 404), method
        try:
            return route(), method
        except Exception as exc:  # a bug in a view must cost one answer, not the endpoint
            log.exception("%s %s failed", self.name, path)
            return json_reply({"error": f"{path} failed: {exc}"}, 500), method
