"""The WSGI middleware in front of moto: throttling, faults, latency, EC2 semantics, counters.

One EC2 request goes through, in order (the order real EC2 shows a client):

1. counted as a call of its action; in IAM mode, authorized (:mod:`vpccni.localcloud.ec2.iam`) —
   a denied call is answered ``UnauthorizedOperation`` and goes no further;
2. the action class's token bucket: empty -> ``RequestLimitExceeded`` (503) at once;
3. an injected fault is picked (if a rule fires);
4. the latency profile's delay is slept — outside the state lock, so slow calls overlap;
5. the fault, if any, is answered (or the connection held and dropped);
6. under the state lock: the action's handler (vpccni.localcloud.ec2_semantics_*) validates, rewrites or
   answers; moto serves what is forwarded; the handler's ``after`` patches state and XML; listeners hear
   about every successful mutating call, still under the lock (so their snapshot is consistent). A
   describe of one instance (or of its ENIs) is answered from :mod:`.describe_cache` while nothing
   touched that instance since the same describe was served.

Requests that are not EC2 (moto's ``/moto-api``, other services) pass through to moto untouched; the
``/_localcloud/`` control plane is served by :mod:`vpccni.localcloud.ec2.control`. Every request reaching
moto carries this server's account id, so servers in one process do not share state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import random
import re
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from vpccni.localcloud.ec2 import describe as ec2_semantics_describe
from vpccni.localcloud.ec2 import eni as ec2_semantics_eni
from vpccni.localcloud.ec2 import instances as ec2_semantics_instances
from vpccni.localcloud.ec2 import ips as ec2_semantics_ips
from vpccni.localcloud.ec2.control import CONTROL_PREFIX, ControlPlane
from vpccni.localcloud.ec2.counters import CallCounters
from vpccni.localcloud.ec2.describe_cache import DescribeCache
from vpccni.localcloud.ec2.faults import FaultInjector
from vpccni.localcloud.ec2.handlers import Answer, Ec2Context, Forward, Handler
from vpccni.localcloud.ec2.iam import Ec2Iam
from vpccni.localcloud.ec2.latency import Latency
from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest, error_body, request_id
from vpccni.localcloud.ec2.state import Ec2State
from vpccni.localcloud.ec2.throttle import Throttler, is_mutating

log = logging.getLogger(__name__)

EC2_API_VERSION = "2016-11-15"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d+/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")
DROPPED = "ConnectionDropped"  # counted as an error when a timeout fault drops the connection

StartResponse = Callable[..., Any]
Reply = tuple[int, list[tuple[str, str]], bytes]

HANDLERS: dict[str, Handler] = {
    **ec2_semantics_ips.HANDLERS,
    **ec2_semantics_eni.HANDLERS,
    **ec2_semantics_instances.HANDLERS,
    **ec2_semantics_describe.HANDLERS,
}


class Ec2Middleware:
    """The WSGI application the local EC2 endpoint serves."""

    def __init__(
        self,
        *,
        state: Ec2State,
        lock: threading.RLock,
        throttler: Throttler,
        faults: FaultInjector,
        latency: Latency,
        counters: CallCounters,
        rng: random.Random,
        notify: Callable[[str], None],
        stopping: threading.Event,
        iam: Ec2Iam | None = None,
        wait: Callable[[float], object] | None = None,
    ) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._moto = DomainDispatcherApplication(create_backend_app)
        self._ec2_app: Any = None
        self._state = state
        self._lock = lock
        self._throttler = throttler
        self._faults = faults
        self._latency = latency
        self._counters = counters
        self._context = Ec2Context(state, rng)
        self._describes = DescribeCache(state)
        self._notify = notify
        self._stopping = stopping
        self._iam = iam
        # How a latency or a held (timeout) fault is waited out: the stop event's wait by default, so a
        # stopping server wakes its sleepers; the simulator passes a wait on its virtual clock.
        self._wait = wait or stopping.wait
        self._control = ControlPlane(
            throttler=throttler,
            faults=faults,
            latency=latency,
            counters=counters,
            account_id=state.account_id,
            region=state.region,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = _read_body(environ)
        if environ.get("PATH_INFO", "").startswith(CONTROL_PREFIX):
            status, payload = self._control.handle(
                environ.get("REQUEST_METHOD", "GET"), environ["PATH_INFO"], body
            )
            return _respond(start_response, status, [("Content-Type", "application/json")], payload)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self._state.account_id
        request = QueryRequest.decode(body) if _is_ec2(environ, body) else None
        if request is None or not request.action:
            environ["wsgi.input"] = io.BytesIO(body)
            # moto's own API (a reset) may change what the index and the kept describes mirror
            self._state.forget_index()
            self._describes.forget()
            return self._moto(environ, start_response)  # type: ignore[no-any-return]
        action = request.action
        self._counters.call(action)
        denied = self._iam.check(environ, body, action, request) if self._iam else None
        reply = _error(denied) if denied else self._serve(environ, action, request)
        if reply is None:
            self._counters.outcome(action, DROPPED)
            _drop(environ)
            return _respond(start_response, 500, [], b"")
        status, headers, payload = reply
        code = None
        if status >= 300:
            found = _ERROR_CODE.search(payload)
            code = found.group(1).decode() if found else f"HTTP{status}"
        self._counters.outcome(action, code)
        return _respond(start_response, status, headers, payload)

    def _serve(self, environ: dict[str, Any], action: str, request: QueryRequest) -> Reply | None:
        """The answer to one EC2 request, or None to drop the connection."""
        wrong_region = _signed_region(environ)
        if wrong_region and wrong_region != self._state.region:
            return _error(
                Ec2ApiError(
                    "AuthFailure",
                    f"This local cloud serves region {self._state.region}; "
                    f"the request was signed for {wrong_region}.",
                )
            )
        filtered = len(request.params) > 2  # anything besides Action and Version narrows the result
        if not self._throttler.try_acquire(action, filtered=filtered):
            return _error(Ec2ApiError("RequestLimitExceeded", "Request limit exceeded."))
        fault = self._faults.pick(action)
        delay = self._latency.delay_for(action)
        if delay > 0:
            self._wait(delay)
        if fault is not None:
            if fault.timeout_s is not None:
                self._wait(fault.timeout_s)
                return None
            return _error(Ec2ApiError(fault.code, fault.message, fault.status))
        with self._lock:
            if not is_mutating(action):
                return self._describe_locked(environ, action, request)
            touched = self._describes.touched(action, request)
            reply = self._serve_locked(environ, action, request)
            if reply[0] < 300:
                self._state.after_mutation(action)
                self._describes.changed(touched)
                self._notify(action)
        return reply

    def _describe_locked(self, environ: dict[str, Any], action: str, request: QueryRequest) -> Reply:
        key = self._describes.key(action, request)
        kept = self._describes.get(key) if key is not None else None
        if kept is not None:
            return kept
        reply = self._serve_locked(environ, action, request)
        if key is not None:
            self._describes.put(key, reply)
        return reply

    def _serve_locked(self, environ: dict[str, Any], action: str, request: QueryRequest) -> Reply:
        handler = HANDLERS.get(action)
        try:
            outcome = handler(self._context, request) if handler else Forward(request)
            if isinstance(outcome, Answer):
                return 200, _xml_headers(), outcome.body
            status, headers, payload = self._forward(environ, outcome.request)
            if status < 300 and outcome.after is not None:
                payload = outcome.after(payload)
            return status, headers, payload
        except Ec2ApiError as error:
            return _error(error)
        except Exception as error:  # a bug here must reach the client as an error, never a hang
            log.exception("local EC2 failed serving %s", action)
            return _error(Ec2ApiError("InternalError", f"local cloud failure in {action}: {error!r}"))

    def _forward(self, environ: dict[str, Any], request: QueryRequest) -> Reply:
        body = request.encode()
        forwarded = dict(environ)
        forwarded["wsgi.input"] = io.BytesIO(body)
        forwarded["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers

        # Every request forwarded here is EC2's: resolve moto's EC2 application once (moto's dispatcher
        # lists its package directory on every request to find it).
        if self._ec2_app is None:
            self._ec2_app = self._moto.get_application(forwarded)
        payload = wsgi_body(self._ec2_app, forwarded, capture)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        return captured["status"], headers, payload


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _signed_region(environ: dict[str, Any]) -> str | None:
    found = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    return found["region"] if found and found["service"] == "ec2" else None


def _is_ec2(environ: dict[str, Any], body: bytes) -> bool:
    found = _CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if found:
        return found["service"] == "ec2"
    return f"Version={EC2_API_VERSION}".encode() in body


def _xml_headers() -> list[tuple[str, str]]:
    return [("Content-Type", "text/xml;charset=UTF-8"), ("x-amzn-RequestId", request_id())]


def _error(error: Ec2ApiError) -> Reply:
    return error.status, _xml_headers(), error_body(error.code, error.message)


def _respond(
    start_response: StartResponse, status: int, headers: list[tuple[str, str]], body: bytes
) -> list[bytes]:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    start_response(f"{status} {reason}", [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _drop(environ: dict[str, Any]) -> None:
    """Close the client's connection without an answer (werkzeug ignores the failed write after)."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):  # the client may have gone already
            connection.shutdown(socket.SHUT_RDWR)


def wsgi_body(app: Any, environ: dict[str, Any], start_response: Any) -> bytes:
    """A WSGI application's whole response body; the iterable is closed as PEP 3333 asks."""
    chunks = app(environ, start_response)
    try:
        return b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
