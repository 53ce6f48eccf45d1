"""What the emulated VPC fabric should look like, as a pure function of EC2's state — and the diff to it.

The dataplane (:mod:`vpccni.localcloud.vpc.dataplane`) keeps one router namespace ("vpc") and one namespace
per node. For every ENI attached to a node's instance there is one veth: ``eth<device index>`` with the
ENI's MAC in the node, :func:`vpc_link_name` in the router. The router delivers every private address and
delegated prefix of an ENI down that ENI's link, the way EC2's fabric does: it does not ARP for addresses
(a pod address is not a local address of the node, so nobody would answer); it sends everything to the
ENI's MAC. That is a permanent neighbour entry for the ENI's primary address plus routes via it:

    <primary>/32        dev <link> scope link         (and neigh <primary> lladdr <ENI MAC> permanent)
    <secondary>/32      via <primary> dev <link>
    <prefix>/28         via <primary> dev <link>

Nothing here does I/O: :func:`desired_state` maps InstanceViews to a :class:`DesiredState`, and
:func:`plan_changes` compares the state last applied with the desired one. Ordering matters and is part
of the plan's contract: remove stale links first (a device index or link name may be reused by the new
attachment), then create links, then replace routes, then delete the routes nobody owns any more.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vpccni.localcloud.model import InstanceView

# Instance states whose ENIs carry traffic. A stopped or terminated instance's node keeps its namespace,
# but the fabric stops delivering to it (EC2 detaches or deletes a terminated instance's ENIs anyway).
LIVE_INSTANCE_STATES = frozenset({"pending", "running"})
LINK_NAME_MAX = 15  # IFNAMSIZ - 1
_HEX_TAIL = re.compile(r"[0-9a-f]{8,}")


@dataclass(frozen=True)
class EniLink:
    """One attached ENI as the fabric sees it: its veth pair and how the router reaches it."""

    eni_id: str
    instance_id: str
    device_index: int
    mac: str
    primary_ip: str
    subnet_cidr: str
    vpc_ifname: str  # the router's end, in the vpc namespace
    mtu: int = 9001  # the fabric's: EC2's jumbo frames; an Azure virtual network's 1500

    @property
    def node_ifname(self) -> str:
        """The node's end: what the instance's OS names the device (``eth<device index>``)."""
        return f"eth{self.device_index}"

    @property
    def is_primary(self) -> bool:
        return self.device_index == 0

    @property
    def gateway(self) -> str:
        """The subnet's router address: base + 1, as in every VPC subnet."""
        return subnet_gateway(self.subnet_cidr)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet_cidr).prefixlen


@dataclass(frozen=True)
class VpcRoute:
    """A route in the router toward one ENI link; ``via`` is None for the ENI's own primary address."""

    dst: str  # CIDR: "10.0.1.7/32" or "10.0.1.32/28"
    vpc_ifname: str
    via: str | None

    @property
    def dst_addr(self) -> str:
        return self.dst.split("/", 1)[0]

    @property
    def dst_len(self) -> int:
        return int(self.dst.split("/", 1)[1])


@dataclass(frozen=True)
class DesiredState:
    links: Mapping[str, EniLink] = field(default_factory=dict)  # by ENI id
    routes: Mapping[str, VpcRoute] = field(default_factory=dict)  # by destination CIDR


EMPTY = DesiredState()


@dataclass(frozen=True)
class Plan:
    """What to do, in this order: remove_links, add_links, set_routes, delete_routes."""

    remove_links: tuple[EniLink, ...] = ()
    add_links: tuple[EniLink, ...] = ()
    set_routes: tuple[VpcRoute, ...] = ()
    delete_routes: tuple[VpcRoute, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.remove_links or self.add_links or self.set_routes or self.delete_routes)


def subnet_gateway(subnet_cidr: str) -> str:
    return str(ipaddress.ip_network(subnet_cidr).network_address + 1)


def vpc_link_name(prefix: str, eni_id: str) -> str:
    """The router's end of an ENI's veth: the prefix and as much of the ENI id's tail as fits.

    Named after the ENI, not the node or device index, so that a name is never reused by a different
    attachment while the old link might still exist. ENI ids are 17 random hex digits; even an 8-char
    prefix keeps 7 of them (28 bits). An id that does not end in hex digits (an Azure NIC's resource id,
    ``.../networkInterfaces/<vm>-nic-0``) is named by a digest of the whole id instead.
    """
    suffix = eni_id.rsplit("-", 1)[-1]
    if not _HEX_TAIL.fullmatch(suffix):
        suffix = hashlib.sha256(eni_id.lower().encode()).hexdigest()
    room = LINK_NAME_MAX - len(prefix)
    if room < 6:
        raise ValueError(f"prefix {prefix!r} leaves too little room for an ENI id in a link name")
    return prefix + suffix[-room:]


def _host(address: str) -> str:
    return f"{address}/32"


def desired_state(instances: Iterable[InstanceView], prefix: str, *, mtu: int = 9001) -> DesiredState:
    """Links and router routes for the given nodes' instances (InstanceViews); ``mtu``: the links'.

    Only live instances' attached ENIs count. If EC2 ever showed one address on two ENIs (it does not),
    the later ENI in id order would win, deterministically.
    """
    links: dict[str, EniLink] = {}
    routes: dict[str, VpcRoute] = {}
    for instance in instances:
        if instance.state not in LIVE_INSTANCE_STATES:
            continue
        for eni in sorted(instance.enis, key=lambda e: e.eni_id):
            if eni.device_index is None or eni.attachment_status != "attached" or not eni.private_ips:
                continue
            link = EniLink(
                eni_id=eni.eni_id,
                instance_id=instance.instance_id,
                device_index=eni.device_index,
                mac=eni.mac.lower(),
                primary_ip=eni.primary_ip,
                subnet_cidr=eni.subnet_cidr,
                vpc_ifname=vpc_link_name(prefix, eni.eni_id),
                mtu=mtu,
            )
            links[eni.eni_id] = link
            routes[_host(eni.primary_ip)] = VpcRoute(_host(eni.primary_ip), link.vpc_ifname, None)
            for address in eni.private_ips[1:]:
                routes[_host(address)] = VpcRoute(_host(address), link.vpc_ifname, eni.primary_ip)
            for prefix_cidr in eni.ipv4_prefixes:
                routes[prefix_cidr] = VpcRoute(prefix_cidr, link.vpc_ifname, eni.primary_ip)
    return DesiredState(links=links, routes=routes)


def plan_changes(applied: DesiredState, desired: DesiredState) -> Plan:
    """The steps from ``applied`` (what the kernel has) to ``desired``.

    A link whose attachment changed in any way (another instance, device index or MAC) is removed and
    created again. Removing a link takes its routes with it, so routes over a recreated link are set again
    even if unchanged, and routes over a removed link are not deleted one by one.
    """
    remove = [link for eni_id, link in applied.links.items() if desired.links.get(eni_id) != link]
    add = [link for eni_id, link in desired.links.items() if applied.links.get(eni_id) != link]
    recreated = {link.vpc_ifname for link in add}
    removed = {link.vpc_ifname for link in remove}
    set_routes = [
        route
        for dst, route in desired.routes.items()
        if applied.routes.get(dst) != route or route.vpc_ifname in recreated
    ]
    delete_routes = [
        route
        for dst, route in applied.routes.items()
        if dst not in desired.routes and route.vpc_ifname not in removed
    ]
    # Device indexes sort the adds so eth0 of a node exists (and is configured) before its other links.
    add.sort(key=lambda link: (link.instance_id, link.device_index))
    # Primary-address routes first: the others go via the primary address.
    set_routes.sort(key=lambda route: (route.via is not None, route.dst))
    return Plan(
        remove_links=tuple(sorted(remove, key=lambda link: link.vpc_ifname)),
        add_links=tuple(add),
        set_routes=tuple(set_routes),
        delete_routes=tuple(sorted(delete_routes, key=lambda route: route.dst)),
    )


def after(applied: DesiredState, plan: Plan) -> DesiredState:
    """The state once ``plan`` has been applied to ``applied`` in full (used to check plans in tests)."""
    links = {k: v for k, v in applied.links.items() if v not in plan.remove_links}
    links.update({link.eni_id: link for link in plan.add_links})
    gone = {link.vpc_ifname for link in plan.remove_links}
    routes = {k: v for k, v in applied.routes.items() if v.vpc_ifname not in gone}
    for route in plan.delete_routes:
        routes.pop(route.dst, None)
    routes.update({route.dst: route for route in plan.set_routes})
    return DesiredState(links=links, routes=routes)
