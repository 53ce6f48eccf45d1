"""A real ipamd server (socket, handler, datastore, group-committed checkpoint) on a temp socket, for
tests that talk to it over the wire. Everything it creates is removed on exit, even on failure.

ADD and CHECK carry a pod namespace as the plugin's do: an empty scratch namespace held open for the
server's life (:mod:`vpccni.testing.scratch_netns`); ``NETNS`` is only what the requests call it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field

from ipamd.dataplane.netns import NetnsGuard
from ipamd.dataplane.pod import NullPodNetwork, PodNetwork
from ipamd.serve.handler import RequestHandler
from ipamd.serve.server import IpamServer, ServerSettings
from ipamd.state.checkpoint import CheckpointData, GroupCommitter, load_checkpoint, snapshot_of
from ipamd.state.datastore import Datastore
from ipamd.state.hooks import InMemoryServerMetrics, PoolDemand, PoolStatus
from ipamd.state.recovery import DescribedEni, recover
from vpccni.net.nsutil import NetnsFd
from vpccni.testing.scratch_netns import scratch_netns
from vpccni.wire.client import call_async
from vpccni.wire.protocol import AllocationResult, Op, Request, Response

NETNS = "/run/netns/unit-pod"  # the requests' name for the pod namespace (ipamd never opens it)
POD_NETNS = -1  # call(): pass the harness's pod namespace with an ADD or CHECK


def eni(addresses: int) -> DescribedEni:
    return DescribedEni(
        "eni-test",
        1,
        False,
        "10.1.0.0/16",
        tuple(f"10.1.{i // 200}.{i % 200 + 10}/32" for i in range(addresses)),
    )


@dataclass
class Ipamd:
    workdir: str
    socket_path: str
    state_path: str
    datastore: Datastore
    committer: GroupCommitter
    handler: RequestHandler
    server: IpamServer
    metrics: InMemoryServerMetrics
    pod_netns_fd: int  # an empty network namespace, open: what the plugin would pass

    def on_disk(self) -> CheckpointData:
        data = load_checkpoint(self.state_path)
        return data if data is not None else CheckpointData()

    async def call(self, req: Request, netns_fd: int | None = POD_NETNS) -> Response:
        """One request over the socket, with ``netns_fd`` (by default the pod namespace for an ADD or a
        CHECK, none otherwise; None: none)."""
        if netns_fd == POD_NETNS:
            netns_fd = self.pod_netns_fd if req.op in (Op.ADD, Op.CHECK) else None
        return await call(self.socket_path, req, netns_fd)


@asynccontextmanager
async def running_ipamd(
    *,
    addresses: int = 4,
    cooldown_s: float = 0.0,
    podnet: PodNetwork | None = None,
    pool_status: PoolStatus | None = None,
    demand: PoolDemand | None = None,
    ready: bool = True,
    netns_guard: NetnsGuard | None = None,
    settings: ServerSettings | None = None,
) -> AsyncIterator[Ipamd]:
    workdir = tempfile.mkdtemp(prefix="vpccni-srv-")  # short: a socket path must fit in 108 bytes
    stack = ExitStack()
    try:
        pod_netns_fd = stack.enter_context(scratch_netns())
        socket_path = os.path.join(workdir, "run", "ipamd.sock")
        state_path = os.path.join(workdir, "ipam.json")
        datastore = Datastore(cooldown_s=cooldown_s, clock=time.time)
        recover(datastore, None, [eni(addresses)])
        committer = GroupCommitter(state_path, lambda: snapshot_of(datastore, time.time()), time.time)
        metrics = InMemoryServerMetrics()
        handler = RequestHandler(
            datastore, committer, podnet or NullPodNetwork(), metrics=metrics, pool_status=pool_status,
            demand=demand, netns_guard=netns_guard,
        )
        base = settings or ServerSettings(shutdown_grace_s=2.0)
        server = IpamServer(handler, dataclasses.replace(base, socket_path=socket_path))
        await server.start()
        try:
            if ready:
                handler.mark_ready()
            yield Ipamd(workdir, socket_path, state_path, datastore, committer, handler, server, metrics,
                        pod_netns_fd)
        finally:
            await server.close()
            await committer.aclose()
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)


call = call_async  # one request, one response, over the real socket


def add(
    cid: str, *, network: str = "vpccni", ifname: str = "eth0", netns: str = NETNS, deadline_ms: int = 0
) -> Request:
    return Request(
        op=Op.ADD, network=network, container_id=cid, ifname=ifname, netns=netns, deadline_ms=deadline_ms
    )


def delete(cid: str, *, network: str = "vpccni", ifname: str = "eth0", netns: str = "") -> Request:
    return Request(
        op=Op.DEL, network=network, container_id=cid, ifname=ifname, netns=netns, reason="PodDeleted"
    )


@dataclass
class RecordingPodNetwork:
    """Records every call; setup can be held on a gate; setup/teardown can be told to fail."""

    events: list[tuple[str, str]] = field(default_factory=list)
    namespaces: list[str | None] = field(default_factory=list)  # the label of each call's namespace
    gate: asyncio.Event | None = None
    fail_setup: Exception | None = None
    fail_teardown: Exception | None = None
    problems: list[str] = field(default_factory=list)

    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        self.namespaces.append(ns.label)
        self.events.append(("setup-start", req.container_id))
        if self.gate is not None:
            await self.gate.wait()
        self.events.append(("setup-end", req.container_id))
        if self.fail_setup is not None:
            raise self.fail_setup
        return alloc._replace(host_ifname=f"eni{req.container_id[:11]}", container_ifname=req.ifname)

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        self.namespaces.append(ns.label if ns is not None else None)
        self.events.append(("teardown", req.container_id))
        if self.fail_teardown is not None:
            raise self.fail_teardown

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        self.namespaces.append(ns.label)
        self.events.append(("check", req.container_id))
        return list(self.problems)
