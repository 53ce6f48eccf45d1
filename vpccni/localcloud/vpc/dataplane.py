"""The emulated VPC: nodes as network namespaces, ENIs as veths, a router that follows EC2.

    with LocalCloud() as cloud, VpcDataplane(cloud, prefix="vd") as vpc:
        node = cloud.add_node("m5.large")
        vpc.attach_node(node.instance_id)          # namespace vd-<instance id>, eth0 configured as booted
        ec2_url, imds_url = vpc.node_endpoints(node.instance_id)   # valid inside the node namespace
        vpc.spawn_in_node(node.instance_id, ["vpccni-ipamd"], env=vpc.node_env(node.instance_id))

Topology (namespace names carry the prefix; ``<prefix>-vpc`` is the router)::

    <prefix>-remote  eth0 10.0.255.10 ──┐                 ┌── eth0 (primary ENI: its MAC)    <prefix>-i-<id>
                                        ├─ <prefix>-vpc ──┼── eth1 (secondary ENI: link only)
    <prefix>-inet    eth0 203.0.113.10 ─┘   (router)      └── eth0 …                         <prefix>-i-<id>

The router delivers every private address and /28 prefix to the ENI EC2 says owns it and drops packets
whose source the arrival ENI does not own (see :mod:`dataplane_netlink`); the desired state is a pure
function of EC2's views (:mod:`dataplane_state`). The EC2 layer's listener only requests a pass; a worker
thread (:mod:`dataplane_sync`) reads EC2's current state and applies the difference.

Inside each node namespace, as on an instance: IMDS at 169.254.169.254:80 (the node's own IMDS server,
sharing its lag/stale settings) and the EC2 API at 127.0.0.1:<port> (the same server, another listener),
each on a socket created inside the namespace (:mod:`netns_sockets`).

Root namespace: untouched. Every namespace (and with it every link) is removed by :meth:`close`;
:func:`sweep_dataplane` removes leftovers of a crashed run with the same prefix.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vpccni.errors import CloudNotFound
from vpccni.localcloud.vpc.fabric import Ec2Fabric, Fabric, NodeServices
from vpccni.localcloud.vpc.netlink import (
    DataplaneError,
    RouterRoutes,
    configure_node,
    configure_router,
    connect_host,
    create_eni_link,
    create_netns,
    remove_link,
)
from vpccni.localcloud.vpc.netns import Netns, sweep
from vpccni.localcloud.vpc.state import EMPTY, DesiredState, Plan, desired_state, plan_changes
from vpccni.localcloud.vpc.sync import SyncLoop

if TYPE_CHECKING:
    from vpccni.localcloud.cloud import LocalCloud

__all__ = ["DataplaneError", "DataplaneNode", "VpcDataplane", "sweep_dataplane"]


DEFAULT_PREFIX = "vd"
DEFAULT_REMOTE_CIDR = "10.0.255.0/24"  # inside LocalCloud's default 10.0.0.0/16, outside its subnets
DEFAULT_INTERNET_CIDR = "203.0.113.0/24"  # TEST-NET-3: outside any VPC
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{1,7}")  # what sweep_dataplane accepts; link names fit IFNAMSIZ


@dataclass
class DataplaneNode:
    """One node's namespace and the endpoints that work inside it."""

    instance_id: str
    netns: Netns
    services: NodeServices  # the cloud's API on the namespace's loopback, IMDS at 169.254.169.254

    @property
    def ec2_endpoint(self) -> str:
        """The cloud's API inside the namespace (EC2's, or Azure Resource Manager's)."""
        return self.services.api_endpoint

    @property
    def imds_endpoint(self) -> str:
        return self.services.imds_endpoint


def sweep_dataplane(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove namespaces ``<prefix>-*`` (killing processes inside, by PID) left by a crashed run."""
    return sweep(prefix)


class VpcDataplane:
    """The emulated VPC of one LocalCloud. Context manager; ``start()``/``close()`` also work.

    ``prefix`` names every namespace and router link (2–8 lower-case letters/digits); two dataplanes on
    one machine need different prefixes. ``node_rp_filter`` is the nodes' reverse-path filter default
    (1 = strict, as Amazon Linux 2). ``sync_timeout`` bounds :meth:`sync`/:meth:`wait_synced`.
    """

    def __init__(
        self,
        cloud: LocalCloud | Fabric,
        *,
        prefix: str = DEFAULT_PREFIX,
        remote_cidr: str = DEFAULT_REMOTE_CIDR,
        internet_cidr: str = DEFAULT_INTERNET_CIDR,
        node_rp_filter: int = 1,
        sync_timeout: float = 10.0,
    ) -> None:
        if not _PREFIX_RE.fullmatch(prefix):
            raise DataplaneError(
                f"prefix {prefix!r}: expected 2-8 lower-case letters/digits, starting with a letter"
            )
        # A LocalCloud is EC2's fabric; the local Azure passes its own (vpccni.localcloud.azure.fabric).
        self.fabric: Fabric = cloud if isinstance(cloud, Fabric) else Ec2Fabric(cloud)
        self.prefix = prefix
        self.sync_timeout = sync_timeout
        self._remote_cidr = remote_cidr
        self._internet_cidr = internet_cidr
        self._node_rp_filter = node_rp_filter
        self._lock = threading.Lock()  # guards _nodes; never held across an EC2 call or a pass
        self._nodes: dict[str, DataplaneNode] = {}
        self._namespaces: list[Netns] = []
        self._applied: DesiredState = EMPTY  # touched only by the sync worker
        self._loop = SyncLoop(self._run_pass, name=f"vpc-dataplane-{prefix}")
        self._started = False
        self._closed = False
        self.remote_ip = self.internet_ip = ""
        self._vpc: Netns | None = None
        self._remote: Netns | None = None
        self._internet: Netns | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> VpcDataplane:
        if self._started:
            return self
        if self._closed:
            raise DataplaneError("a closed dataplane cannot be started again")
        self._started = True
        try:
            self._vpc = self._new_netns("vpc")
            self._remote = self._new_netns("remote")
            self._internet = self._new_netns("inet")
            configure_router(self._vpc)
            vpc, prefix = self._vpc, self.prefix
            self.remote_ip = connect_host(vpc, self._remote, f"{prefix}remote", self._remote_cidr)[1]
            self.internet_ip = connect_host(vpc, self._internet, f"{prefix}inet", self._internet_cidr)[1]
            self._loop.start()
            self.fabric.add_listener(self._on_ec2_change)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove every node, namespace, listener and thread; safe to call again."""
        if self._closed:
            return
        self._closed = True
        self._loop.stop()
        with self._lock:
            nodes = list(self._nodes.values())
            self._nodes.clear()
        errors: list[str] = []
        for node in nodes:
            self._stop_services(node, errors)
        with self._lock:
            namespaces = list(reversed(self._namespaces))
        for ns in namespaces:
            # Removing a node namespace takes its links, and their router-side peers, along.
            self._remove_netns(ns, errors)
        if errors:
            raise DataplaneError("dataplane cleanup incomplete: " + "; ".join(errors))

    def __enter__(self) -> VpcDataplane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- namespaces ---------------------------------------------------------------------------------

    @property
    def vpc(self) -> Netns:
        return self._require(self._vpc)

    @property
    def remote(self) -> Netns:
        """A VPC host in another subnet (``remote_ip``), default route to the router."""
        return self._require(self._remote)

    @property
    def internet(self) -> Netns:
        """A host outside the VPC (``internet_ip``); the router forwards to it without NAT."""
        return self._require(self._internet)

    def node(self, instance_id: str) -> DataplaneNode:
        with self._lock:
            try:
                return self._nodes[instance_id]
            except KeyError:
                raise KeyError(f"no node {instance_id!r} attached to this dataplane") from None

    def node_netns(self, instance_id: str) -> Netns:
        return self.node(instance_id).netns

    @property
    def cloud(self) -> LocalCloud:
        """The LocalCloud of an EC2 dataplane."""
        if not isinstance(self.fabric, Ec2Fabric):
            raise DataplaneError("this dataplane is not EC2's: use its fabric")
        return self.fabric.cloud

    @property
    def applied(self) -> DesiredState:
        """What the router was last set to (links by ENI id, routes by destination)."""
        return self._applied

    # --- nodes --------------------------------------------------------------------------------------

    def attach_node(self, instance_id: str) -> DataplaneNode:
        """Give a LocalCloud node its namespace, services and links (as EC2 shows them); idempotent."""
        self._require(self._vpc)
        with self._lock:
            if instance_id in self._nodes:
                return self._nodes[instance_id]
        self.fabric.instance_view(instance_id)  # CloudNotFound for an unknown instance
        netns = self._new_netns(self.fabric.netns_role(instance_id))
        errors: list[str] = []
        try:
            configure_node(netns, rp_filter=self._node_rp_filter)
            node = DataplaneNode(instance_id, netns, self.fabric.serve_node(instance_id, netns.path))
        except BaseException:
            self._remove_netns(netns, errors)
            raise
        with self._lock:
            self._nodes[instance_id] = node
        self.sync()
        return node

    def detach_node(self, instance_id: str) -> None:
        """Remove a node's links, services, processes and namespace (the instance itself stays in EC2)."""
        with self._lock:
            node = self._nodes.pop(instance_id, None)
        if node is None:
            return
        errors: list[str] = []
        try:
            self.sync()
        except DataplaneError as exc:
            errors.append(str(exc))
        self._stop_services(node, errors)
        self._remove_netns(node.netns, errors)
        if errors:
            raise DataplaneError(f"detach {instance_id}: " + "; ".join(errors))

    def node_endpoints(self, instance_id: str) -> tuple[str, str]:
        """(EC2 endpoint, IMDS endpoint) as seen from inside the node's namespace."""
        node = self.node(instance_id)
        return node.ec2_endpoint, node.imds_endpoint

    def node_env(self, instance_id: str) -> dict[str, str]:
        """Environment for a cloud client or ipamd inside the node: endpoints, region, dummy credentials
        (EC2), or ARM's endpoint and CA (Azure)."""
        return self.fabric.node_env(instance_id, self.node(instance_id).services)

    def spawn_in_node(
        self, instance_id: str, argv: Sequence[str], env: Mapping[str, str] | None = None, **popen: Any
    ) -> subprocess.Popen[Any]:
        """Start a process inside the node's namespace; it is killed (by PID) when the node goes away.

        ``env`` None inherits this process's environment; ``popen`` goes to subprocess.Popen.
        """
        netns = self.node_netns(instance_id)
        return netns.spawn(*argv, env=dict(env) if env is not None else None, **popen)

    # --- following EC2 -----------------------------------------------------------------------------

    def sync(self, timeout: float | None = None) -> None:
        """Run a pass now (reading EC2's current state) and wait for it."""
        self._loop.wait(self._loop.request(), timeout or self.sync_timeout)

    def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until every EC2 change notified so far is reflected in the dataplane."""
        self._loop.wait(self._loop.latest(), timeout or self.sync_timeout)

    def _on_ec2_change(self, action: str) -> None:
        # Called under the EC2 state lock: request a pass, nothing more.
        if not self._closed:
            self._loop.request()

    def _run_pass(self) -> None:
        with self._lock:
            nodes = dict(self._nodes)
        views = []
        for instance_id in nodes:
            try:
                views.append(self.fabric.instance_view(instance_id))
            except CloudNotFound:
                continue
        plan = plan_changes(self._applied, desired_state(views, self.prefix, mtu=self.fabric.link_mtu))
        if not plan.empty:
            self._apply(plan, nodes)

    def _apply(self, plan: Plan, nodes: Mapping[str, DataplaneNode]) -> None:
        """Apply ``plan`` step by step, recording each success, so a failed pass resumes where it broke."""
        vpc = self.vpc
        links = dict(self._applied.links)
        routes = dict(self._applied.routes)
        try:
            for link in plan.remove_links:
                remove_link(vpc, link.vpc_ifname)
                links.pop(link.eni_id, None)
                routes = {dst: r for dst, r in routes.items() if r.vpc_ifname != link.vpc_ifname}
            for link in plan.add_links:
                node = nodes.get(link.instance_id)
                if node is None:  # detached while this pass ran
                    continue
                create_eni_link(vpc, node.netns, link)
                links[link.eni_id] = link
            present = {link.vpc_ifname for link in links.values()}
            with vpc.iproute() as ipr:
                router = RouterRoutes(ipr)
                for route in plan.set_routes:
                    if route.vpc_ifname in present:
                        router.set(route)
                        routes[route.dst] = route
                for route in plan.delete_routes:
                    router.delete(route)
                    routes.pop(route.dst, None)
        finally:
            self._applied = DesiredState(links=links, routes=routes)

    # --- helpers ------------------------------------------------------------------------------------

    def _new_netns(self, role: str) -> Netns:
        netns = create_netns(f"{self.prefix}-{role}")
        with self._lock:
            self._namespaces.append(netns)
        return netns

    def _remove_netns(self, netns: Netns, errors: list[str]) -> None:
        try:
            netns.remove()
        except Exception as exc:
            errors.append(f"{netns.name}: {exc}")
        with self._lock:
            if netns in self._namespaces:
                self._namespaces.remove(netns)

    @staticmethod
    def _stop_services(node: DataplaneNode, errors: list[str]) -> None:
        for stop in (node.services.stop, node.netns.stop_processes):
            try:
                stop()
            except Exception as exc:
                errors.append(f"{node.instance_id}: {exc}")

    @staticmethod
    def _require(netns: Netns | None) -> Netns:
        if netns is None:
            raise DataplaneError("the dataplane is not started")
        return netns
