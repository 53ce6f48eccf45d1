"""What ipamd plumbs, chosen by VPCCNI_DATAPLANE, and the crash-point wrappers of the request path.

``linux`` (default): pods through :class:`ipamd.dataplane.pod_linux.LinuxPodNetwork`, the host and every
secondary ENI through :class:`ipamd.dataplane.host.HostNetwork` (set up at start and per ENI, kept right by
the ``host-network`` root task), and recovery keeps only allocations whose host veth still exists. Its modules
(and pyroute2) are imported only in this mode.

``none``: IPAM only. Pods get addresses, nothing is plumbed (:class:`~ipamd.dataplane.pod.NullPodNetwork`), no
ENI link is set up, every checkpointed pod is presumed alive at recovery. This is how cloud-tier tests
and ``vpccni bench churn`` run ipamd, in the root namespace against the local cloud.

Every netlink call blocks, so each hook runs it in a worker thread; snapshots of the datastore are taken
on the event loop first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from ipamd.dataplane.pod import NullPodNetwork, PodNetwork
from ipamd.reconcile.context import ReconcilerHooks
from ipamd.state.checkpoint import Committer
from ipamd.state.crashpoints import CrashPoints
from ipamd.state.datastore import Allocation, Datastore
from vpccni.cloud.base import NetworkInterface
from vpccni.config.settings import Settings
from vpccni.errors import PlumbingFailed
from vpccni.net.nsutil import NetnsFd
from vpccni.wire.protocol import AllocationResult, Request

log = logging.getLogger("ipamd.app.main")


def _always_alive(_: Allocation) -> bool:
    return True


async def _nothing() -> None:
    return None


async def _no_reconcile(_: Datastore) -> None:
    return None


async def _no_cidr_update(_: Sequence[str]) -> None:
    return None


@dataclass
class Dataplane:
    podnet: PodNetwork = field(default_factory=NullPodNetwork)
    host_setup: Callable[[], Awaitable[None]] = _nothing  # once at start, before serving
    hooks: ReconcilerHooks = field(default_factory=ReconcilerHooks)  # ENI setup/teardown
    recovery_predicate: Callable[[], Callable[[Allocation], bool]] = lambda: _always_alive
    reconcile: Callable[[Datastore], Awaitable[None]] = _no_reconcile  # the host-network task's pass
    update_vpc_cidrs: Callable[[Sequence[str]], Awaitable[None]] = _no_cidr_update  # SNAT's "inside the VPC"
    active: bool = False  # anything to reconcile at all


def build_dataplane(settings: Settings, *, primary_mac: str, primary_ipv4: str,
                    vpc_cidrs: Sequence[str]) -> Dataplane:
    if settings.dataplane == "none":
        return Dataplane()
    from ipamd.dataplane.host import HostNetwork
    from ipamd.dataplane.pod_linux import LinuxPodNetwork

    hostnet = HostNetwork(settings, primary_mac=primary_mac, primary_ipv4=primary_ipv4,
                          vpc_cidrs=vpc_cidrs)
    podnet = LinuxPodNetwork.from_settings(settings)

    async def host_setup() -> None:
        await asyncio.to_thread(hostnet.setup_host)

    async def eni_attached(eni: NetworkInterface, subnet_cidr: str) -> None:
        await asyncio.to_thread(hostnet.setup_eni, eni.interface_id, eni.mac, eni.primary_address,
                                subnet_cidr, eni.device_index or 0)

    async def eni_detached(eni_id: str) -> None:
        try:
            await asyncio.to_thread(hostnet.teardown_eni, eni_id)
        except PlumbingFailed as exc:  # the ENI is gone from EC2 already; the host pass cleans up the rest
            log.warning("teardown of ENI %s: %s", eni_id, exc)

    async def reconcile(datastore: Datastore) -> None:
        allocations = datastore.allocations()
        tables = {eni.eni_id: eni.route_table for eni in datastore.enis()}
        report = await asyncio.to_thread(hostnet.reconcile, allocations, tables)
        for line in report.fixed:
            log.info("host network: fixed %s", line)
        for line in report.unresolved:
            log.warning("host network: %s", line)

    async def update_vpc_cidrs(cidrs: Sequence[str]) -> None:
        await asyncio.to_thread(hostnet.update_vpc_cidrs, cidrs)  # logs when the rules had to change

    return Dataplane(podnet=podnet, host_setup=host_setup, update_vpc_cidrs=update_vpc_cidrs,
                     hooks=ReconcilerHooks(eni_attached=eni_attached, eni_detached=eni_detached),
                     recovery_predicate=podnet.pod_exists_predicate, reconcile=reconcile, active=True)


class CrashingCommitter:
    """The handler's committer with the ``server.after_commit`` crash point after each durable write."""

    def __init__(self, inner: Committer, crash: CrashPoints) -> None:
        self._inner = inner
        self._crash = crash

    async def commit(self) -> None:
        await self._inner.commit()
        self._crash.reached("server.after_commit")


class CrashingPodNetwork:
    """The pod network with crash points: an ADD durable but unanswered, a DEL not yet released."""

    def __init__(self, inner: PodNetwork, crash: CrashPoints) -> None:
        self._inner = inner
        self._crash = crash

    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        self._crash.reached("server.add.before_reply")
        return await self._inner.setup(alloc, req, ns)

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        self._crash.reached("server.del.before_release")
        await self._inner.teardown(alloc, req, ns)

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        return await self._inner.check(alloc, req, ns)
