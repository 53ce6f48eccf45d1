"""ipamd's pod plumbing on Linux: :class:`~ipamd.dataplane.pod.PodNetwork` over :mod:`vpccni.net`.

How ipamd main wires it::

    podnet = LinuxPodNetwork.from_settings(settings)          # acts in ipamd's own namespace
    report = recover(datastore, checkpoint, enis, pod_exists=podnet.pod_exists_predicate())
    handler = RequestHandler(datastore, committer, podnet, ...)

``setup``/``teardown``/``check`` are coroutines; the blocking netlink work runs in a worker thread
(``asyncio.to_thread``), so the event loop never waits on the kernel. The pod's namespace is the
descriptor the plugin passed; the thread works on its own copy of it (the request's is closed once the
answer is sent, even if the thread still runs), and no runtime path is ever opened. Every failure is a
:class:`~vpccni.errors.PlumbingError` naming the step, so the handler can roll back and say why.
:meth:`pod_exists_predicate` dumps the links once and answers "does this allocation's host veth still exist?"
for every checkpointed allocation (aws-node's restart check: ``ReadBackingStore`` keeps only pods whose veth
exists).

Naming is aws-node's: the host veth is AWS_VPC_K8S_CNI_VETHPREFIX + 11 hex of sha1("<ns>.<name>"), so
``ip link`` reads the same after switching from aws-node. Two additions, both where aws-node has no
answer: without a pod name (a runtime that passes no K8S_POD_* args) the container ID is hashed; a pod
interface other than eth0 (a second attachment of the same pod) hashes "<ns>.<name>.<ifname>", so the
two never fight over one host veth name.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ipamd.state.datastore import Allocation
from vpccni.config.settings import Settings
from vpccni.errors import PlumbingError
from vpccni.net.hostroutes import HostRoute, main_host_routes, remove_host_routing
from vpccni.net.names import DEFAULT_VETH_PREFIX, host_veth_name, route_table_for_device, validate_veth_prefix
from vpccni.net.nsutil import NetnsFd, error_code, fail, iproute
from vpccni.net.pod import PodAttachment, check_pod, setup_pod, teardown_pod
from vpccni.net.rtnl import rtnl
from vpccni.wire.cniresult import host_routing_from_prev_result
from vpccni.wire.protocol import AllocationResult, PodRef, Request

__all__ = ["DEFAULT_POD_IFNAME", "LinuxPodNetwork", "pod_host_veth_name"]

log = logging.getLogger(__name__)

DEFAULT_POD_IFNAME = "eth0"  # CNI_IFNAME of a pod's first (usually only) interface
_HASH_CHARS = 11
_ENODEV = 19
T = TypeVar("T")


def pod_host_veth_name(prefix: str, pod: PodRef, container_id: str, ifname: str) -> str:
    """The host veth of one pod interface (see the module docstring for the two additions to aws)."""
    second = bool(ifname) and ifname != DEFAULT_POD_IFNAME
    if pod.namespace and pod.name:
        name = f"{pod.name}.{ifname}" if second else pod.name
        return host_veth_name(prefix, pod.namespace, name)
    key = f"{container_id}.{ifname}" if second else container_id
    return host_veth_name(prefix, None, None, container_id=key)


class LinuxPodNetwork:
    """Plumbs pods in ``netns`` (None: ipamd's own namespace; tests pass a node namespace)."""

    def __init__(
        self, *, veth_prefix: str = DEFAULT_VETH_PREFIX, pod_mtu: int = 9001, netns: str | None = None
    ) -> None:
        self.veth_prefix = validate_veth_prefix(veth_prefix)
        self.pod_mtu = pod_mtu
        self.netns = netns

    @classmethod
    def from_settings(cls, settings: Settings, *, netns: str | None = None) -> LinuxPodNetwork:
        return cls(veth_prefix=settings.veth_prefix, pod_mtu=settings.effective_pod_mtu, netns=netns)

    # --- PodNetwork -------------------------------------------------------------------------------

    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        return await self._off_loop("set up pod network", self.setup_blocking, alloc, req, ns)

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        await self._off_loop("tear down pod network", self.teardown_blocking, alloc, req, ns)

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        try:
            return await self._off_loop("check pod network", self.check_blocking, alloc, req, ns)
        except PlumbingError as exc:  # CHECK answers with sentences, never with an exception
            return [f"could not check the pod's plumbing: {exc}"]

    async def _off_loop(self, step: str, func: Callable[..., T], alloc: AllocationResult | None,
                        req: Request, ns: NetnsFd | None) -> T:
        # The thread's own descriptor: the request's is closed when the answer goes, and a request given up
        # on (ipamd stopping) must not leave the thread setns(2)-ing into a number reused meanwhile.
        own = NetnsFd(os.dup(ns.fd), ns.label) if ns is not None else None

        def run() -> T:
            try:
                return self._guarded(step, func, alloc, req, own)
            finally:
                if own is not None:
                    os.close(own.fd)

        return await asyncio.to_thread(run)

    # --- the same, blocking (for threads that are already off the loop) ---------------------------

    def setup_blocking(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        ifname = req.ifname or alloc.container_ifname
        att = PodAttachment(
            pod_netns=ns,
            ifname=ifname,
            host_ifname=self.host_ifname(req.pod, req.container_id, ifname),
            ipv4=alloc.ipv4,
            table=self.route_table(alloc),
            mtu=alloc.mtu or self.pod_mtu,
        )
        links = setup_pod(att, netns=self.netns)
        return alloc._replace(
            host_ifname=links.host_ifname,
            host_mac=links.host_mac,
            container_ifname=links.pod_ifname,
            container_mac=links.pod_mac,
            route_table=att.table,
            mtu=att.mtu,
            netns=ns.label,
        )

    def teardown_blocking(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        if alloc is None:
            self._teardown_unknown(req)
            return
        ifname = req.ifname or alloc.container_ifname
        candidates = self._candidate_names(req, ifname, alloc.host_ifname)
        present = self._first_present(candidates)
        # ipamd holds this address for this very key, so no other pod can have it: whatever link its
        # routing points at, the routing is this pod's (also when the veth name does not match ours, e.g.
        # after AWS_VPC_K8S_CNI_VETHPREFIX changed). remove_host_routing without a guard does that.
        remove_host_routing(alloc.ipv4, netns=self.netns)
        teardown_pod(self._attachment(alloc, req, ifname, present or candidates[0], ns), netns=self.netns)

    def check_blocking(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        ifname = req.ifname or alloc.container_ifname
        candidates = self._candidate_names(req, ifname, alloc.host_ifname)
        host = self._first_present(candidates) or candidates[0]
        return check_pod(self._attachment(alloc, req, ifname, host, ns), netns=self.netns)

    # --- helpers for ipamd main and the reconciler ------------------------------------------------

    def host_ifname(self, pod: PodRef, container_id: str, ifname: str) -> str:
        return pod_host_veth_name(self.veth_prefix, pod, container_id, ifname or DEFAULT_POD_IFNAME)

    @staticmethod
    def route_table(alloc: AllocationResult) -> int:
        """The allocation's table if set, else from its device number (main for the primary ENI)."""
        return alloc.route_table or route_table_for_device(alloc.device_number)

    def pod_exists_predicate(self) -> Callable[[Allocation], bool]:
        """Dump the links once; return "does this allocation's host veth still exist?" for recovery.

        Matched like aws-node: a link whose name ends with the allocation's 11-hex hash, whatever its
        prefix, so a changed AWS_VPC_K8S_CNI_VETHPREFIX does not drop every live pod at restart.
        """
        names = self._guarded("list host links", self._link_names)
        hashes = {name[-_HASH_CHARS:] for name in names if len(name) > _HASH_CHARS}

        def pod_exists(assignment: Allocation) -> bool:
            ifname = assignment.key.ifname or DEFAULT_POD_IFNAME
            name = self.host_ifname(assignment.pod, assignment.key.container_id, ifname)
            return name in names or name[-_HASH_CHARS:] in hashes

        return pod_exists

    def host_routes(
        self, allocations: Iterable[Allocation], route_tables: Mapping[str, int]
    ) -> list[HostRoute]:
        """The host routing every allocation needs (for the reconciler); allocations whose ENI is not in
        ``route_tables`` (eni_id -> table) are left out: their table is unknown."""
        routes = []
        for held in allocations:
            table = route_tables.get(held.eni_id)
            if table is None:
                log.warning(
                    "allocation %s on unknown ENI %s: host routing not reconciled", held.address, held.eni_id
                )
                continue
            name = self.host_ifname(held.pod, held.key.container_id, held.key.ifname)
            routes.append(HostRoute(ipv4=held.address, host_ifname=name, table=table))
        return routes

    # --- internals --------------------------------------------------------------------------------

    def _attachment(self, alloc: AllocationResult, req: Request, ifname: str,
                    host_ifname: str, ns: NetnsFd | None) -> PodAttachment:
        return PodAttachment(
            pod_netns=ns,
            ifname=ifname,
            host_ifname=host_ifname,
            ipv4=alloc.ipv4,
            table=self.route_table(alloc),
            mtu=alloc.mtu or self.pod_mtu,
        )

    def _candidate_names(self, req: Request, ifname: str, known: str = "") -> list[str]:
        """Host veth names this pod's may have, most likely first: the one ipamd reported, ours from
        the pod's name, prevResult's, ours from the container ID (a DEL may carry less than its ADD)."""
        names = [known] if known else []
        names.append(self.host_ifname(req.pod, req.container_id, ifname))
        names += [
            r.host_ifname for r in host_routing_from_prev_result(req.prev_result, ifname) if r.host_ifname
        ]
        if req.container_id:
            names.append(self.host_ifname(PodRef(), req.container_id, ifname))
        return list(dict.fromkeys(names))

    def _first_present(self, candidates: list[str]) -> str | None:
        with rtnl(self.netns) as nl:  # a lookup per candidate: O(1), where a link dump is O(pods)
            return next((name for name in candidates if nl.link_index(name) is not None), None)

    def _link_names(self) -> set[str]:
        with iproute(self.netns) as ipr:
            return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.link("dump")}

    def _teardown_unknown(self, req: Request) -> None:
        """DEL for a key ipamd holds nothing for (a repeated DEL, or ipamd lost it): remove what can be
        found. The address may belong to another pod by now, so routing goes only if its /32 route still
        leads to this pod's veth (or nowhere), and a veth goes only if no pod route leads to it any more."""
        ifname = req.ifname or DEFAULT_POD_IFNAME
        names = self._candidate_names(req, ifname)
        own = names[0]
        for target in host_routing_from_prev_result(req.prev_result, ifname):
            host = target.host_ifname or own
            for line in remove_host_routing(target.address, host_ifname=host, netns=self.netns):
                log.info("DEL %s/%s without allocation: %s", req.container_id, ifname, line)
        where = self.netns or "the node namespace"
        with iproute(self.netns) as ipr:
            routed = set(main_host_routes(ipr).values())
            for name in names:
                found = ipr.link_lookup(ifname=name)
                if not found:
                    continue
                if found[0] in routed:
                    log.info(
                        "DEL %s/%s: kept %s, a pod route still leads to it", req.container_id, ifname, name
                    )
                    continue
                try:
                    ipr.link("del", index=found[0])
                except Exception as exc:
                    if error_code(exc) != _ENODEV:
                        fail(f"delete link {name} in {where}", exc)

    @staticmethod
    def _guarded(step: str, func: Callable[..., T], *args: Any) -> T:
        """Run ``func``; anything that is not already a PlumbingError becomes one naming ``step``."""
        try:
            return func(*args)
        except PlumbingError:
            raise
        except Exception as exc:
            fail(step, exc)
