"""ipamd as a real process against a LocalCloud node, and the helpers to drive and inspect it.

Reusable by any tier that needs a running ipamd (cloud tests here, e2e later):

- ``ipamd_cloud``: a LocalCloud (fast profile) shared by the tests of one module; tests inject faults
  or change IMDS lag on it and the ``run_ipamd`` fixture undoes that afterwards;
- ``run_ipamd(instance_type, settings, ...) -> Ipamd``: a fresh node and an ipamd for it (started and
  ready unless ``start=False``); every ipamd it made is stopped (by PID) and its directory removed after
  the test, even on failure;
- :class:`Ipamd`: ADD/DEL over the socket like the plugin (an ADD passes an empty scratch namespace: ipamd
  runs without plumbing here, and takes a pod's namespace only open), ``/v1/pool`` and ``/v1/enis``, EC2's
  truth for the node (``ec2_enis``), restarts, crashes (SIGKILL or an armed crash point), ``wait_until``;
  all but the EC2 part live in :class:`IpamdUnderTest`, which the Azure tier shares (``azure_harness``).

Timers are short (pool loop 0.1 s, release spacing and min ENI age 1 s ...) and the API budget wide, so a
scenario takes seconds; tests that are about the budget or the timers pass their own values.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

import pytest

from vpccni.localcloud import LocalCloud, Node
from vpccni.localcloud.model import EniView
from vpccni.testing.cluster_node import FAST_TIMERS
from vpccni.testing.ipamd_process import CRASH_ENV, IpamdPaths, IpamdProcess, free_tcp_port, ipamd_env
from vpccni.testing.scratch_netns import LABEL, scratch_netns
from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.introspection import http_get, introspect
from vpccni.wire.protocol import ErrorKind, NoIpReason, Op, Request, Response

T = TypeVar("T")

NETWORK = "vpccni"
NETNS = LABEL  # what the requests call the pods' namespace: the scratch one each ipamd is passed open
WAITING_REASONS = {NoIpReason.GROWING, NoIpReason.STARTING, NoIpReason.THROTTLED}

# The cluster's short timers, with a faster pool loop and EC2 reconcile: these tests wait on them.
FAST_SETTINGS: dict[str, str] = {
    **FAST_TIMERS,
    "VPCCNI_POOL_LOOP_PERIOD": "0.1",
    "VPCCNI_EC2_RECONCILE_PERIOD": "2",
}


def wait_until(what: str, check: Callable[[], T | None], timeout_s: float = 20.0, every_s: float = 0.05) -> T:
    """Poll ``check`` until it returns something other than None/False; its value. Fails with ``what``."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None and last is not False:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


@dataclass
class IpamdUnderTest:
    """One ipamd process and the plugin's side of it, whatever the cloud; a subclass says how ipamd is
    configured for its cloud (:meth:`cloud_env`) and what the cloud holds (:meth:`cloud_cidrs`)."""

    paths: IpamdPaths
    settings: dict[str, str]
    metrics_port: int
    process: IpamdProcess | None = None
    add_answers: Counter[str] = field(default_factory=Counter)  # ADD answers seen, by outcome
    # An empty network namespace, open, passed with ADD and CHECK (made on first use, closed by close()).
    _scratch: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _pod_netns_fd: int | None = None

    @property
    def pod_netns_fd(self) -> int:
        if self._pod_netns_fd is None:
            self._pod_netns_fd = self._scratch.enter_context(scratch_netns())
        return self._pod_netns_fd

    # --- the cloud -------------------------------------------------------------------------------

    def cloud_env(self) -> dict[str, str]:
        raise NotImplementedError

    def cloud_cidrs(self) -> dict[str, set[str]]:
        """Interface -> pod CIDRs (secondary /32s and /28 prefixes) as the cloud holds them."""
        raise NotImplementedError

    # --- process ---------------------------------------------------------------------------------

    def env(self, crash: str | None = None) -> dict[str, str]:
        env = self.cloud_env()
        if crash:
            env[CRASH_ENV] = crash
        return env

    def start(self, *, crash: str | None = None, wait: bool = True) -> Self:
        self.process = IpamdProcess(self.env(crash), self.paths).start()
        if wait:
            self.process.wait_ready()
        return self

    def restart(self, *, crash: str | None = None) -> Self:
        self.stop()
        return self.start(crash=crash)

    def stop(self) -> int:
        """SIGTERM and wait: ipamd's clean stop."""
        return self.process.terminate() if self.process else 0

    def kill(self) -> int:
        """SIGKILL: a crash."""
        return self.process.kill() if self.process else 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
        self._scratch.close()
        shutil.rmtree(self.paths.workdir, ignore_errors=True)

    def log(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""

    # --- the plugin's side -----------------------------------------------------------------------

    def request(self, op: Op, cid: str = "", **fields: Any) -> Response:
        req = Request(op=op, network=NETWORK, container_id=cid, **fields)
        netns_fd = self.pod_netns_fd if op in (Op.ADD, Op.CHECK) else None
        return call(self.paths.socket, req, timeout_s=10, netns_fd=netns_fd)

    def add(self, cid: str, ifname: str = "eth0") -> Response:
        answer = self.request(Op.ADD, cid, ifname=ifname, netns=NETNS)
        self.add_answers["ok" if answer.ok else str(answer.error.kind if answer.error else "?")] += 1
        return answer

    def delete(self, cid: str, ifname: str = "eth0") -> Response:
        return self.request(Op.DEL, cid, ifname=ifname, reason="PodDeleted")

    def add_ok(
        self, cid: str, timeout_s: float = 20.0, also_wait_for: frozenset[NoIpReason] = frozenset()
    ) -> str:
        """ADD until it gets an address, retrying while the pool is still growing (kubelet retries too) or
        for any reason in ``also_wait_for``."""

        def attempt() -> str | None:
            answer = self.add(cid)
            if answer.ok and answer.allocation is not None:
                return answer.allocation.ipv4
            error = answer.error
            assert error is not None and error.kind in (ErrorKind.NO_IP, ErrorKind.NOT_READY), answer
            waiting = WAITING_REASONS | also_wait_for
            assert error.reason in waiting, f"ADD {cid}: {error.reason}: {error.message}"
            return None

        return wait_until(f"ADD {cid} to get an address", attempt, timeout_s)

    def status(self) -> Response:
        return self.request(Op.STATUS)

    # --- introspection ---------------------------------------------------------------------------

    def pool(self) -> dict[str, Any]:
        doc: dict[str, Any] = introspect(self.paths.introspection, "/v1/pool")
        return doc

    def enis_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = introspect(self.paths.introspection, "/v1/enis")
        return doc

    def metrics(self) -> str:
        status, body = http_get(f"127.0.0.1:{self.metrics_port}", "/metrics")
        assert status == 200
        return body.decode()

    def datastore_cidrs(self) -> dict[str, set[str]]:
        """ENI -> CIDRs as ipamd holds them."""
        return {e["id"]: set(e["cidrs"]) for e in self.pool()["enis"]}

    def pool_settled(self) -> dict[str, Any] | None:
        """/v1/pool once a pass that saw the pool as it is now found nothing to do. A pool the node's limits
        hold short (ENI limit, max pods) is settled; one the cloud holds back (throttled, ...) is not."""
        try:
            pool = self.pool()
        except IpamdUnreachable:
            return None
        decision, totals, blocked = pool["last_decision"], pool["totals"], pool["blocked"]
        if blocked is not None and blocked["reason"] not in ("eni_limit", "max_pods"):
            return None
        if decision is None or decision["basis"] is None or not pool["ready"]:
            return None
        seen = {k: decision["basis"][k] for k in ("total", "assigned", "cooling")}
        current = {k: totals[k] for k in ("total", "assigned", "cooling")}
        quiet = not (decision["assign"] or decision["new_eni"] or decision["release"] or decision["free_eni"])
        return pool if quiet and seen == current else None


@dataclass(kw_only=True)
class Ipamd(IpamdUnderTest):
    """ipamd on a LocalCloud (EC2) node."""

    cloud: LocalCloud
    node: Node

    def cloud_env(self) -> dict[str, str]:
        return ipamd_env(
            ec2_endpoint=self.cloud.ec2_endpoint,
            region=self.cloud.region,
            imds_endpoint=self.node.imds_endpoint,
            paths=self.paths,
            metrics_port=self.metrics_port,
            settings=self.settings,
        )

    def cloud_cidrs(self) -> dict[str, set[str]]:
        return self.ec2_cidrs()

    # --- EC2's truth -----------------------------------------------------------------------------

    def ec2_enis(self) -> list[EniView]:
        """The node's attached ENIs as EC2 holds them, by device index."""
        found = self.cloud.server.eni_views(instance_id=self.node.instance_id)
        return sorted(found, key=lambda e: e.device_index or 0)

    def ec2_cidrs(self) -> dict[str, set[str]]:
        """ENI -> pod CIDRs (secondary /32s and /28 prefixes) per EC2."""
        return {
            e.eni_id: {f"{a}/32" for a in e.private_ips[1:]} | set(e.ipv4_prefixes) for e in self.ec2_enis()
        }


@pytest.fixture(scope="module")
def ipamd_cloud() -> Iterator[LocalCloud]:
    with LocalCloud(profile="fast", seed=11) as cloud:
        yield cloud


@pytest.fixture
def run_ipamd(ipamd_cloud: LocalCloud) -> Iterator[Callable[..., Ipamd]]:
    made: list[Ipamd] = []

    def make(
        instance_type: str = "m5.large",
        settings: Mapping[str, str] | None = None,
        *,
        node: Node | None = None,
        start: bool = True,
        crash: str | None = None,
        **node_kwargs: Any,
    ) -> Ipamd:
        node = node or ipamd_cloud.add_node(instance_type, **node_kwargs)
        workdir = tempfile.mkdtemp(prefix="vpccni-ipamd-")  # short: socket paths must fit in 108 bytes
        ipamd = Ipamd(IpamdPaths(workdir), {**FAST_SETTINGS, **(settings or {})}, free_tcp_port(),
                      cloud=ipamd_cloud, node=node)
        made.append(ipamd)
        if start:
            ipamd.start(crash=crash)
        return ipamd

    try:
        yield make
    finally:
        for ipamd in made:
            ipamd.close()
        ipamd_cloud.server.faults.clear()
        for node in ipamd_cloud.nodes:
            imds = ipamd_cloud.imds(node)
            imds.set_lag(0)
            imds.set_stale(0)
