"""Ec2Server: an EC2-faithful endpoint on a loopback port — moto's state plus EC2's rules.

    with Ec2Server(profile="realistic") as ec2:
        client = ec2.client(retries={"total_max_attempts": 1})
        ec2.faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded", count=2)
        ...
        ec2.counters()["AssignPrivateIpAddresses"].throttled

moto's EC2 app runs inside our own threaded werkzeug server, behind :class:`Ec2Middleware`, which adds
what moto lacks: instance-type limits, unique and non-reserved addresses, prefix delegation,
DeleteOnTermination, EC2's error codes, latency, token-bucket throttling, fault injection and counters.
The same port serves a JSON control plane under ``/_localcloud/`` for other processes
(:class:`~vpccni.localcloud.ec2.control.Ec2ControlClient`).

moto keeps its state in this process, keyed by account: each server gets its own account id, so several
servers in one process never share state (unless ``MOTO_ACCOUNT_ID`` is set, which moto obeys above all).
The in-process views (:meth:`instance_view`, :meth:`eni_views`) and the listeners are how the IMDS and
the VPC dataplane follow EC2 without polling it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import random
import socket
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from vpccni.localcloud.ec2.control import Ec2ControlClient
from vpccni.localcloud.ec2.counters import ActionCounters, CallCounters
from vpccni.localcloud.ec2.faults import FaultInjector, FaultRule
from vpccni.localcloud.ec2.iam import Ec2Iam
from vpccni.localcloud.ec2.latency import Latency, LatencyProfile
from vpccni.localcloud.ec2.state import Ec2State, InstanceTypeLimits, limits_for
from vpccni.localcloud.ec2.throttle import BucketSpec, ThrottleConfig, Throttler
from vpccni.localcloud.model import EniView, InstanceView

__all__ = [
    "ActionCounters",
    "BucketSpec",
    "Ec2ControlClient",
    "Ec2Server",
    "FaultInjector",
    "FaultRule",
    "InstanceTypeLimits",
    "Latency",
    "LatencyProfile",
    "ThrottleConfig",
    "Throttler",
    "limits_for",
]

log = logging.getLogger(__name__)

_DEFAULT_ACCOUNT = 123456789012  # moto's default; later servers in the process count up from it
_account_numbers = itertools.count()
DUMMY_KEY = "testing"


def _next_account_id() -> str:
    forced = os.environ.get("MOTO_ACCOUNT_ID")
    return forced or f"{_DEFAULT_ACCOUNT + next(_account_numbers):012d}"


class Ec2Server:
    """One local EC2 endpoint (one account, one region). Context manager; ``start()``/``stop()`` too.

    ``profile``: latency profile name (``"fast"``, ``"realistic"``) or a LatencyProfile.
    ``throttle``: token-bucket settings; None = AWS's published defaults, ``ThrottleConfig.disabled()`` = off.
    ``seed``: seeds fault probabilities and address choice, so a run replays.
    ``account_id``: None = a fresh id per server (isolates servers in one process).
    ``load_default_amis``: load moto's ~1300 public AMIs (DescribeImages answers them; costs ~0.3 s per
    start). Off by default: RunInstances accepts any image id either way.
    """

    def __init__(
        self,
        *,
        region: str = "us-west-2",
        profile: str | LatencyProfile = "fast",
        throttle: ThrottleConfig | None = None,
        seed: int = 0,
        account_id: str | None = None,
        load_default_amis: bool = False,
    ) -> None:
        forced = os.environ.get("MOTO_ACCOUNT_ID")
        if forced and account_id and account_id != forced:
            # moto would serve MOTO_ACCOUNT_ID's state while we read account_id's: refuse, loudly.
            raise ValueError(f"account_id {account_id!r} conflicts with MOTO_ACCOUNT_ID={forced!r}")
        self.region = region
        self.account_id = account_id or _next_account_id()
        self.lock = threading.RLock()
        self.faults = FaultInjector(seed)
        self.throttle = Throttler(throttle or ThrottleConfig())
        self.latency = Latency(profile)
        self.endpoint = ""
        # IAM mode (off by default): requests not signed with DUMMY_KEY are authorized by IAM policies.
        self.iam = Ec2Iam(self.account_id, region, admin_keys=(DUMMY_KEY,))
        self._seed = seed
        self._load_default_amis = load_default_amis
        self._counters = CallCounters()
        self._state = Ec2State(self.account_id, region)
        self._listeners: list[Callable[[str], None]] = []
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._extra_listeners: list[Callable[[], None]] = []

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            return
        from werkzeug.serving import make_server

        from vpccni.localcloud.ec2.middleware import Ec2Middleware

        with self.lock:
            self._state.create(load_default_amis=self._load_default_amis)
        app = Ec2Middleware(
            state=self._state,
            lock=self.lock,
            throttler=self.throttle,
            faults=self.faults,
            latency=self.latency,
            counters=self._counters,
            rng=random.Random(self._seed),
            notify=self._notify,
            stopping=self._stopping,
            iam=self.iam,
        )
        self._stopping.clear()
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_quiet_handler())
        self.endpoint = f"http://127.0.0.1:{self._server.server_port}"
        # poll_interval: how long stop() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"ec2server-{self.account_id}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes requests sleeping on latency or a timeout fault
        for stop_listener in list(self._extra_listeners):
            stop_listener()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        with self.lock:
            self._state.forget()
        self.iam.forget()

    def serve_on(self, sock: socket.socket) -> Callable[[], None]:
        """Serve this same endpoint also on ``sock``, bound and listening — e.g. 127.0.0.1:<port> created
        inside a node's network namespace, where the main port is unreachable. Returns the function that
        stops this listener (idempotent); :meth:`stop` stops it too. ``sock`` is taken over (closed here).
        """
        from werkzeug.serving import make_server

        if self._server is None:
            raise RuntimeError("Ec2Server is not started")
        host, port = sock.getsockname()[:2]
        extra = make_server(
            host, port, self._server.app, threaded=True, request_handler=_quiet_handler(), fd=sock.fileno()
        )
        sock.close()  # werkzeug serves a duplicate of the descriptor
        thread = threading.Thread(
            target=extra.serve_forever, name=f"ec2server-{self.account_id}-extra", daemon=True
        )
        thread.start()

        def stop_listener() -> None:
            if stop_listener in self._extra_listeners:
                self._extra_listeners.remove(stop_listener)
                extra.shutdown()
                thread.join(timeout=10)

        self._extra_listeners.append(stop_listener)
        return stop_listener

    def __enter__(self) -> Ec2Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- clients and counters ------------------------------------------------------------------------

    def client(self, **botocore_config_kwargs: Any) -> Any:
        """A boto3 EC2 client bound to this endpoint with dummy credentials.

        Keyword arguments go to ``botocore.config.Config`` (e.g. ``retries={"total_max_attempts": 1}``,
        ``read_timeout=2``).
        """
        from botocore.config import Config

        config = Config(**botocore_config_kwargs) if botocore_config_kwargs else None
        with _session_lock:  # botocore sessions are not safe for concurrent client creation
            return _session(self.region).client("ec2", endpoint_url=self.endpoint, config=config)

    def control(self) -> Ec2ControlClient:
        """A client of this server's HTTP control plane (what another process would use)."""
        return Ec2ControlClient(self.endpoint)

    def counters(self) -> dict[str, ActionCounters]:
        """Per action: calls, throttled, errors (a copy)."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

    # --- in-process views and notifications ----------------------------------------------------------

    def instance_view(self, instance_id: str) -> InstanceView:
        """The instance and its attached ENIs by device index; CloudNotFound for an unknown id."""
        with self.lock:
            return self._state.instance_view(instance_id)

    def eni_views(self, *, instance_id: str | None = None) -> list[EniView]:
        """Every ENI (or those attached to ``instance_id``), sorted by id."""
        with self.lock:
            return self._state.eni_views(instance_id)

    def add_listener(self, fn: Callable[[str], None]) -> None:
        """Call ``fn(action)`` after every successful mutating EC2 call, under :attr:`lock`."""
        self._listeners.append(fn)

    def _notify(self, action: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(action)
            except Exception:  # a broken listener must not turn a successful EC2 call into an error
                log.exception("local EC2 listener %r failed after %s", listener, action)


_session_lock = threading.Lock()


@functools.cache
def _session(region: str) -> Any:
    """One boto3 session per region for every client we make: loading EC2's service model costs
    ~0.3 s per session, and the credentials are dummies anyway."""
    import boto3

    return boto3.session.Session(
        aws_access_key_id=DUMMY_KEY, aws_secret_access_key=DUMMY_KEY, region_name=region
    )


def _quiet_handler() -> type:
    """moto's request handler, without a log line per request."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            pass

    return QuietHandler
