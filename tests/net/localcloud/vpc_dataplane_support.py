"""Helpers for the emulated-VPC tests: a cloud with a dataplane and one node, ipamd-like ENI setup, probes.

The node-side configuration here is what ipamd does on a real node (aws-node's host and ENI setup: rp_filter,
a route table per ENI, from-ENI rules), written out with bare pyroute2 so that these tests exercise the
dataplane alone, not vpccni.net.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vpccni.localcloud.cloud import LocalCloud, Node
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns
from vpccni.localcloud.vpc.state import subnet_gateway

MAIN_TABLE = 254
PRIO_FROM_ENI = 32765  # from <ENI primary> lookup <ENI table>
PRIO_FROM_POD = 1536  # from <pod/secondary address> lookup <ENI table>
_SCOPE_LINK = 253


@dataclass
class Vpc:
    cloud: LocalCloud
    dp: VpcDataplane
    ec2: Any  # boto3 EC2 client
    node: Node

    @property
    def node_ns(self) -> Netns:
        return self.dp.node_netns(self.node.instance_id)


@contextlib.contextmanager
def vpc_with_node(prefix: str, instance_type: str = "m5.large") -> Iterator[Vpc]:
    """A LocalCloud, its dataplane and one attached node; all of it removed on exit, even on failure."""
    sweep_dataplane(prefix)
    try:
        with LocalCloud() as cloud, VpcDataplane(cloud, prefix=prefix) as dp:
            node = cloud.add_node(instance_type)
            dp.attach_node(node.instance_id)
            yield Vpc(cloud, dp, cloud.client(), node)
    finally:
        sweep_dataplane(prefix)  # a no-op unless close() failed half-way


@dataclass(frozen=True)
class AttachedEni:
    eni_id: str
    attachment_id: str
    mac: str
    primary_ip: str
    subnet_cidr: str
    device_index: int

    @property
    def ifname(self) -> str:
        return f"eth{self.device_index}"

    @property
    def table(self) -> int:
        return self.device_index + 1  # aws-node's table for device N


def create_and_attach_eni(vpc: Vpc, node: Node, device_index: int) -> AttachedEni:
    ec2 = vpc.ec2
    created = ec2.create_network_interface(SubnetId=node.subnet_id)["NetworkInterface"]
    eni_id = created["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=node.instance_id, DeviceIndex=device_index
    )["AttachmentId"]
    subnet = ec2.describe_subnets(SubnetIds=[node.subnet_id])["Subnets"][0]["CidrBlock"]
    return AttachedEni(
        eni_id, attachment, created["MacAddress"], created["PrivateIpAddress"], subnet, device_index
    )


def detach_and_delete_eni(vpc: Vpc, eni: AttachedEni) -> None:
    with contextlib.suppress(Exception):
        vpc.ec2.detach_network_interface(AttachmentId=eni.attachment_id, Force=True)
    with contextlib.suppress(Exception):
        vpc.ec2.delete_network_interface(NetworkInterfaceId=eni.eni_id)


def link_mac(ns: Netns, ifname: str) -> str | None:
    """The MAC of ``ifname`` in ``ns``, or None when there is no such link."""
    with ns.iproute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        return str(ipr.link("get", index=found[0])[0].get_attr("IFLA_ADDRESS")) if found else None


def setup_eni_like_ipamd(ns: Netns, eni: AttachedEni) -> None:
    """setupENINetwork: link up, ENI primary/subnet, table N+1 (gateway, default), rule 32765; the kernel's
    main-table subnet route for the link removed so host traffic to the subnet keeps to eth0."""
    net = ipaddress.ip_network(eni.subnet_cidr)
    gateway = subnet_gateway(eni.subnet_cidr)
    with ns.iproute() as ipr:
        index = ipr.link_lookup(ifname=eni.ifname)[0]
        ipr.link("set", index=index, state="up")
        ipr.addr("add", index=index, address=eni.primary_ip, prefixlen=net.prefixlen)
        with contextlib.suppress(Exception):
            ipr.route("del", dst=str(net.network_address), dst_len=net.prefixlen, oif=index, table=MAIN_TABLE)
        ipr.route("replace", dst=gateway, dst_len=32, oif=index, scope=_SCOPE_LINK, table=eni.table)
        ipr.route("replace", dst="0.0.0.0", dst_len=0, gateway=gateway, oif=index, table=eni.table)
        ipr.rule("add", src=eni.primary_ip, src_len=32, table=eni.table, priority=PRIO_FROM_ENI)


def add_address(ns: Netns, ifname: str, address: str, table: int = MAIN_TABLE) -> None:
    """An address EC2 gave an ENI, put on that ENI's link; off the primary ENI, a rule so replies leave
    by the same ENI."""
    with ns.iproute() as ipr:
        ipr.addr("add", index=ipr.link_lookup(ifname=ifname)[0], address=address, prefixlen=32)
        if table != MAIN_TABLE:
            ipr.rule("add", src=address, src_len=32, table=table, priority=PRIO_FROM_POD)


def remove_address(ns: Netns, ifname: str, address: str, table: int = MAIN_TABLE) -> None:
    with ns.iproute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            with contextlib.suppress(Exception):
                ipr.addr("del", index=found[0], address=address, prefixlen=32)
        if table != MAIN_TABLE:
            delete_rule(ns, address, table)


def delete_rule(ns: Netns, address: str, table: int) -> None:
    with ns.iproute() as ipr, contextlib.suppress(Exception):
        ipr.rule("del", src=address, src_len=32, table=table, priority=PRIO_FROM_POD)


def udp_source_seen(sender: Netns, src: str, receiver: Netns, dst: str, timeout: float = 1.0) -> str | None:
    """Send UDP from ``src`` in ``sender`` to ``dst`` in ``receiver``; the source address the receiver saw,
    or None if nothing arrived. One-way on purpose: a reply path cannot make it fail or succeed."""
    rx = receiver.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    tx = sender.call(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    token = secrets.token_bytes(8)
    try:
        rx.bind((dst, 0))
        tx.bind((src, 0))
        port = rx.getsockname()[1]
        for _ in range(3):  # the first datagram may wait on ARP; later ones make loss unlikely
            tx.sendto(token, (dst, port))
            deadline = time.monotonic() + timeout / 3
            while (left := deadline - time.monotonic()) > 0 and select.select([rx], [], [], left)[0]:
                data, (peer, _) = rx.recvfrom(64)
                if data == token:
                    return str(peer)
        return None
    finally:
        rx.close()
        tx.close()


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """A child environment without proxies (they would capture the node's endpoints), plus ``extra``."""
    keep = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("AWS_")}
    return {**keep, **extra}
