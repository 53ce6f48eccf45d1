"""A mini VPC in network namespaces, for the vpccni.net tests.

    remote (10.0.9.9) ──┐                        ┌── nt8eth0 (primary ENI, 10.0.1.5, MAC ..01:05) ── node
                        vpc router (10.0.1.1) ───┤
    internet            │ source check           └── nt8eth1 (secondary ENI, 10.0.1.6, MAC ..01:06)
    (203.0.113.10) ─────┘                                                                     │
                                                                             pods (veth nt8v<hash>)

The vpc namespace plays EC2's fabric: each node address and pod address is routed to the one ENI that
owns it, and a reverse-path filter drops a packet whose source arrives on a link that does not own it —
EC2's source/destination check. So "a pod on the secondary ENI leaves through it" and "SNAT'd traffic
leaves by the primary ENI" are not assumptions: traffic taking the wrong ENI is dropped, the probe fails.

Everything is named ``nt8*`` and removed by the fixtures even when a test fails.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, WhoAmIServer, sweep
from vpccni.net.host import setup_eni, setup_host
from vpccni.net.iptables import apply_snat_rules
from vpccni.net.names import MAIN_TABLE, host_veth_name
from vpccni.net.pod import PodAttachment, PodLinks, setup_pod, teardown_pod
from vpccni.net.snat import SnatSettings

PREFIX = "nt8"
VETH_PREFIX = "nt8v"
POD_IFNAME = "nt8if0"
VPC_CIDR = "10.0.0.0/16"
SUBNET = "10.0.1.0/24"
GATEWAY = "10.0.1.1"
REMOTE_IP = "10.0.9.9"
INTERNET_IP = "203.0.113.10"
CONNMARK = 0x80
MTU = 9001


@dataclass(frozen=True)
class Eni:
    ifname: str
    mac: str
    ip: str
    table: int
    vpc_ifname: str


PRIMARY = Eni("nt8eth0", "02:08:00:00:01:05", "10.0.1.5", MAIN_TABLE, "nt8rtr0")
SECONDARY = Eni("nt8eth1", "02:08:00:00:01:06", "10.0.1.6", 2, "nt8rtr1")


@dataclass
class Pod:
    ns: Netns
    att: PodAttachment
    links: PodLinks
    eni: Eni

    @property
    def ip(self) -> str:
        return self.att.ipv4


@dataclass
class Topology:
    nsf: NetnsFactory
    vpc: Netns
    node: Netns
    remote: Netns
    internet: Netns
    remote_server: WhoAmIServer
    internet_server: WhoAmIServer
    pods: list[Pod] = field(default_factory=list)

    def snat_settings(self, **overrides: object) -> SnatSettings:
        base: dict[str, object] = {
            "primary_ifname": PRIMARY.ifname,
            "primary_ipv4": PRIMARY.ip,
            "vpc_cidrs": (VPC_CIDR,),
            "veth_prefix": VETH_PREFIX,
            "connmark": CONNMARK,
        }
        base.update(overrides)
        return SnatSettings(**base)  # type: ignore[arg-type]

    def assign(self, ip: str, eni: Eni) -> None:
        """EC2 assigning a secondary address to an ENI: the fabric now delivers it there."""
        with self.vpc.iproute() as ipr:
            ipr.route(
                "replace", dst=ip, dst_len=32, gateway=eni.ip, oif=ipr.link_lookup(ifname=eni.vpc_ifname)[0]
            )

    def unassign(self, ip: str) -> None:
        with self.vpc.iproute() as ipr:
            ipr.route("del", dst=ip, dst_len=32)

    def attachment(self, ns: Netns, ip: str, eni: Eni, name: str) -> PodAttachment:
        return PodAttachment(
            pod_netns=ns.path,
            ifname=POD_IFNAME,
            host_ifname=host_veth_name(VETH_PREFIX, "default", name),
            ipv4=ip,
            table=eni.table,
            mtu=MTU,
        )

    def add_pod(self, ip: str, eni: Eni, *, name: str | None = None) -> Pod:
        ns = self.nsf.netns("pod")
        self.assign(ip, eni)
        att = self.attachment(ns, ip, eni, name or f"pod-{secrets.token_hex(3)}")
        pod = Pod(ns=ns, att=att, links=setup_pod(att, netns=self.node.path), eni=eni)
        self.pods.append(pod)
        return pod

    def remove_pods(self) -> None:
        for pod in self.pods:
            teardown_pod(pod.att, netns=self.node.path)
            self.unassign(pod.ip)
            pod.ns.remove()
        self.pods.clear()


def _addr(ns: Netns, ifname: str, address: str, prefixlen: int) -> None:
    with ns.iproute() as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=address, prefixlen=prefixlen)


def _route(ns: Netns, **kwargs: object) -> None:
    with ns.iproute() as ipr:
        if "oif_name" in kwargs:
            kwargs["oif"] = ipr.link_lookup(ifname=kwargs.pop("oif_name"))[0]
        ipr.route("replace", **kwargs)


def build_topology(nsf: NetnsFactory) -> Topology:
    vpc, node, remote, internet = (nsf.netns(role) for role in ("vpc", "node", "remote", "inet"))
    for eni in (PRIMARY, SECONDARY):
        nsf.veth(node, eni.ifname, vpc, eni.vpc_ifname, a_mac=eni.mac, mtu=MTU)
    nsf.veth(remote, "nt8r0", vpc, "nt8rtr9")
    nsf.veth(internet, "nt8i0", vpc, "nt8rtri")

    vpc.sysctl("net.ipv4.ip_forward", "1")
    # EC2's source/destination check: a packet whose source is not owned by the ENI it came from is
    # dropped. Done with the rpfilter match rather than the rp_filter sysctl, which would also refuse ARP
    # requests whose sender address is "wrong" — EC2's gateway answers those, and a refused ARP would
    # poison the node's neighbour cache for later tests after a deliberate wrong-path probe.
    vpc.run("iptables-nft", "-t", "raw", "-A", "PREROUTING", "-m", "rpfilter", "--invert", "-j", "DROP")
    for eni in (PRIMARY, SECONDARY):
        _addr(vpc, eni.vpc_ifname, GATEWAY, 32)
        _route(vpc, dst=eni.ip, dst_len=32, oif_name=eni.vpc_ifname, scope="link")
    _addr(vpc, "nt8rtr9", "10.0.9.1", 24)
    _addr(vpc, "nt8rtri", "203.0.113.1", 24)
    _addr(remote, "nt8r0", REMOTE_IP, 24)
    _route(remote, dst="0.0.0.0", dst_len=0, gateway="10.0.9.1")
    _addr(internet, "nt8i0", INTERNET_IP, 24)
    _route(internet, dst="0.0.0.0", dst_len=0, gateway="203.0.113.1")

    # What the node's OS does before ipamd starts: the primary ENI is configured by DHCP.
    _addr(node, PRIMARY.ifname, PRIMARY.ip, 24)
    _route(node, dst="0.0.0.0", dst_len=0, gateway=GATEWAY)
    remote_server = WhoAmIServer(remote, REMOTE_IP)
    try:
        internet_server = WhoAmIServer(internet, INTERNET_IP)
    except BaseException:
        remote_server.close()
        raise
    topo = Topology(nsf, vpc, node, remote, internet, remote_server, internet_server)
    try:
        # What ipamd does at start.
        setup_host(PRIMARY.ifname, connmark=CONNMARK, netns=node.path)
        setup_eni(SECONDARY.mac, SECONDARY.ip, SUBNET, SECONDARY.table, MTU, netns=node.path)
        apply_snat_rules(topo.snat_settings(), netns=node.path)
    except BaseException:
        close_servers(topo)
        raise
    return topo


def close_servers(topo: Topology) -> None:
    # A socket holds its namespace alive: servers must close before the namespaces are removed.
    topo.remote_server.close()
    topo.internet_server.close()


@contextlib.contextmanager
def topology_context() -> Iterator[Topology]:
    """A fresh mini VPC; everything (pods, servers, namespaces) removed on exit, even on failure."""
    with NetnsFactory(PREFIX) as nsf:
        topo: Topology | None = None
        try:
            topo = build_topology(nsf)
            yield topo
        finally:
            if topo is not None:
                close_servers(topo)
                topo.pods.clear()  # their namespaces go with the factory


@pytest.fixture(scope="session")
def swept() -> Iterator[None]:
    """Leftovers of a crashed earlier run (prefix nt8 only) are removed before and after the session.

    Not autouse: other suites share this directory and must not sweep while these tests run.
    """
    sweep(PREFIX)
    yield
    sweep(PREFIX)


@pytest.fixture(scope="module")
def topo(swept: None) -> Iterator[Topology]:
    """One mini VPC per test module; tests add pods through ``pods`` and restore what they change."""
    with topology_context() as topology:
        yield topology


@pytest.fixture
def add_pod(topo: Topology) -> Iterator[Callable[..., Pod]]:
    """add_pod(ip, eni) -> Pod; every pod made in the test is torn down after it."""
    yield topo.add_pod
    topo.remove_pods()
