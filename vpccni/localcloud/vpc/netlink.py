"""Netlink and sysctl work of the emulated VPC: namespaces, the router, ENI links, routes.

This is the I/O half of the dataplane; what to create is decided in :mod:`dataplane_state`. Every step
here is idempotent or clears a leftover first, so a pass that failed half-way can simply be run again.

The router namespace plays EC2's fabric:

- ``ip_forward=1``; no ICMP redirects (a node talking to its own other ENI would otherwise be told to
  "go direct", which is not how a VPC behaves);
- strict reverse-path filtering on every link — EC2's source/destination check: a packet arriving on an
  ENI's link with a source address that ENI does not own has no route back over that link and is
  dropped;
- proxy ARP, answered at once: a node ARPing on its primary ENI for another address of its subnet (the
  kernel's subnet route) gets the router's MAC, as a VPC answers for the whole subnet;
- on each ENI link, the subnet gateway address (``/32``: answered by ARP, no subnet route), a permanent
  neighbour for the ENI's primary address with the ENI's MAC, and routes (see dataplane_state).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vpccni.errors import PermanentError
from vpccni.localcloud.vpc.netns import Netns, create_veth
from vpccni.localcloud.vpc.state import EniLink, VpcRoute
from vpccni.net.nsutil import error_code, sysctl_path, write_sysctl_path

if TYPE_CHECKING:
    from pyroute2 import IPRoute

ENI_MTU = 9001  # EC2's jumbo-frame MTU inside a VPC
IMDS_ADDRESS = "169.254.169.254"
_ENOENT, _ESRCH, _ENODEV, _EEXIST, _EADDRNOTAVAIL = 2, 3, 19, 17, 99
_SCOPE_LINK = 253
IFALIAS_MAX = 255  # IFALIASZ (256) less the terminating NUL


class DataplaneError(PermanentError):
    """The emulated VPC could not be built or kept in sync; the message names the step."""


def create_netns(name: str) -> Netns:
    """A new namespace ``name`` with lo up and IPv6 off; fails if it exists (sweep leftovers first)."""
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        hint = (
            " (a leftover of a crashed run? sweep_dataplane(prefix) removes it)"
            if os.path.exists(f"/run/netns/{name}")
            else ""
        )
        raise DataplaneError(f"create netns {name}: {proc.stderr.strip()}{hint}")
    ns = Netns(name)
    try:
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        with ns.iproute() as ipr:
            ipr.link("set", index=_index(ipr, "lo"), state="up")
    except BaseException:
        ns.remove()
        raise
    return ns


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise DataplaneError(f"link {ifname} not found")
    return int(found[0])


@contextlib.contextmanager
def _ignoring(*codes: int) -> Iterator[None]:
    """Suppress netlink errors with the given errno (e.g. deleting what is already gone)."""
    try:
        yield
    except Exception as exc:
        if error_code(exc) not in codes:
            raise


def configure_router(vpc: Netns) -> None:
    """Router-wide settings; ``default`` values are what each ENI link gets when it appears."""
    for key, value in (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.default.rp_filter", "1"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv4.conf.default.send_redirects", "0"),
        ("net.ipv4.conf.default.proxy_arp", "1"),
    ):
        vpc.sysctl(key, value)


def configure_node(node: Netns, *, rp_filter: int) -> None:
    """A freshly booted instance's kernel settings, and IMDS's link-local address on lo.

    ``ip_forward`` is off as on a fresh host (ipamd turns on what it needs); ``rp_filter`` is the
    distribution's default (Amazon Linux 2: strict, which is why aws-node loosens the primary ENI).
    """
    node.sysctl("net.ipv4.ip_forward", "0")
    node.sysctl("net.ipv4.conf.all.rp_filter", str(rp_filter))
    node.sysctl("net.ipv4.conf.default.rp_filter", str(rp_filter))
    with node.iproute() as ipr, _ignoring(_EEXIST):
        ipr.addr("add", index=_index(ipr, "lo"), address=IMDS_ADDRESS, prefixlen=32)


def add_veth(
    a: Netns, a_ifname: str, b: Netns, b_ifname: str, *, a_mac: str | None = None, mtu: int | None = None
) -> None:
    """A veth created in ``a`` with its peer born directly in ``b`` (fast: no namespace move).

    A leftover link of either name is removed first, so a retried step does not fail on EEXIST.
    """
    for ns, ifname in ((a, a_ifname), (b, b_ifname)):
        with ns.iproute() as ipr:
            for index in ipr.link_lookup(ifname=ifname):
                with _ignoring(_ENODEV):
                    ipr.link("del", index=index)
    create_veth(a, a_ifname, b, b_ifname, a_mac=a_mac, mtu=mtu)


def set_up(ns: Netns, ifname: str, *, address: str | None = None, prefixlen: int = 32) -> None:
    with ns.iproute() as ipr:
        index = _index(ipr, ifname)
        ipr.link("set", index=index, state="up")
        if address:
            with _ignoring(_EEXIST):
                ipr.addr("add", index=index, address=address, prefixlen=prefixlen)


def add_default_route(ns: Netns, gateway: str) -> None:
    with ns.iproute() as ipr:
        ipr.route("replace", dst="0.0.0.0", dst_len=0, gateway=gateway)


def connect_host(vpc: Netns, host: Netns, vpc_ifname: str, cidr: str) -> tuple[str, str]:
    """Wire a plain host (remote VPC host, internet host) to the router on its own /24-ish network.

    The router takes base + 1, the host base + 10 with a default route to the router. Returns
    (router address, host address).
    """
    net = ipaddress.ip_network(cidr)
    router_ip, host_ip = str(net.network_address + 1), str(net.network_address + 10)
    add_veth(host, "eth0", vpc, vpc_ifname)
    set_up(vpc, vpc_ifname, address=router_ip, prefixlen=net.prefixlen)
    set_up(host, "eth0", address=host_ip, prefixlen=net.prefixlen)
    add_default_route(host, router_ip)
    return router_ip, host_ip


def create_eni_link(vpc: Netns, node: Netns, link: EniLink) -> None:
    """The ENI's veth, the router's end configured; a primary ENI also configured as an instance boots.

    A secondary ENI's node end stays down with no address: configuring it is ipamd's job.
    """
    add_veth(node, link.node_ifname, vpc, link.vpc_ifname, a_mac=link.mac, mtu=link.mtu)
    with vpc.iproute() as ipr:
        index = _index(ipr, link.vpc_ifname)
        ipr.link(
            "set",
            index=index,
            state="up",
            # Resource ids (Azure's) are paths longer than an alias may be (IFALIASZ): their last part.
            ifalias=f"{_short(link.instance_id)} {link.node_ifname} {_short(link.eni_id)}"[:IFALIAS_MAX],
        )
        with _ignoring(_EEXIST):
            ipr.addr("add", index=index, address=link.gateway, prefixlen=32)
        ipr.neigh("replace", dst=link.primary_ip, lladdr=link.mac, ifindex=index, state="permanent")
        ipr.route("replace", dst=link.primary_ip, dst_len=32, oif=index, scope=_SCOPE_LINK)
    # Proxied ARP replies to broadcast requests are otherwise delayed by up to 0.8 s. A namespace has no
    # neigh/default of its own (new links copy the root namespace's), so this is set per link.
    write_sysctl_path(vpc.path, sysctl_path("net", "ipv4", "neigh", link.vpc_ifname, "proxy_delay"), "0")
    if link.is_primary:
        # DHCP on a booting instance: the primary address with the subnet's prefix, a default route.
        set_up(node, link.node_ifname, address=link.primary_ip, prefixlen=link.prefixlen)
        add_default_route(node, link.gateway)


def _short(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[-1]


def remove_link(vpc: Netns, vpc_ifname: str) -> None:
    """Delete an ENI's veth by its router end (the node end goes with it); gone already is fine."""
    with vpc.iproute() as ipr:
        for index in ipr.link_lookup(ifname=vpc_ifname):
            with _ignoring(_ENODEV):
                ipr.link("del", index=index)


class RouterRoutes:
    """Route changes in the router over one netlink handle (one pass of the sync loop)."""

    def __init__(self, ipr: IPRoute) -> None:
        self._ipr = ipr
        self._indexes = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.link("dump")}

    def set(self, route: VpcRoute) -> None:
        index = self._indexes.get(route.vpc_ifname)
        if index is None:
            raise DataplaneError(f"route {route.dst}: router link {route.vpc_ifname} does not exist")
        where: dict[str, Any] = {"scope": _SCOPE_LINK} if route.via is None else {"gateway": route.via}
        self._ipr.route("replace", dst=route.dst_addr, dst_len=route.dst_len, oif=index, **where)

    def delete(self, route: VpcRoute) -> None:
        with _ignoring(_ESRCH, _ENOENT, _EADDRNOTAVAIL):
            self._ipr.route("del", dst=route.dst_addr, dst_len=route.dst_len)
