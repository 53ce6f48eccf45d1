"""An emulated m5.large node plumbed by ipamd's Linux adapters, for the test_ipamd_plumbing* modules.

LocalCloud + VpcDataplane (prefix ``hn``): the node's namespace has eth0 (primary ENI) and, once the
fixture has created and attached one through boto3, eth1 (a secondary ENI with secondary addresses).
:class:`~ipamd.dataplane.host.HostNetwork` sets the host and the ENI up exactly as ipamd main will;
:class:`~ipamd.dataplane.pod_linux.LinuxPodNetwork` plumbs pods whose namespaces the tests create
(``hn-pod-*``), each held open and checked as ipamd's handler does
(:class:`~ipamd.dataplane.netns.NetnsGuard`, which also refuses the node's namespace). Host veths are named
``hnv<hash>``. Everything is removed on exit, even on failure, and leftovers of a crashed run with the same
prefix are swept first. Nothing here touches the root namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import statistics
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipamd.dataplane.host import HostNetwork
from ipamd.dataplane.netns import NetnsGuard
from ipamd.dataplane.pod_linux import LinuxPodNetwork
from ipamd.state.datastore import Allocation, AllocationKey
from tests.net.localcloud.vpc_dataplane_support import (
    AttachedEni,
    Vpc,
    create_and_attach_eni,
    detach_and_delete_eni,
)
from vpccni.config.settings import Settings
from vpccni.localcloud.cloud import LocalCloud, Node
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns, NetnsFactory
from vpccni.net.names import MAIN_TABLE
from vpccni.net.nsutil import NetnsFd
from vpccni.wire.protocol import AllocationResult, Op, PodRef, Request

PREFIX = "hn"
VETH_PREFIX = "hnv"
NETWORK = "vpccni"
POD_IFNAME = "eth0"  # the pod's own namespace (ours, hn-pod-*): the name a runtime passes
ADDRESSES_PER_ENI = 8
T = TypeVar("T")


def settings(**env: str) -> Settings:
    return Settings.from_env({"AWS_VPC_K8S_CNI_VETHPREFIX": VETH_PREFIX, **env})


@dataclass
class Pod:
    ns: Netns
    fd: NetnsFd  # the namespace open, as the plugin passes it
    req: Request
    alloc: AllocationResult  # as setup returned it: host veth name and MACs filled in
    on_secondary: bool

    @property
    def ip(self) -> str:
        return self.alloc.ipv4

    @property
    def allocation(self) -> Allocation:
        key = AllocationKey(self.req.network, self.req.container_id, self.req.ifname)
        return Allocation(
            key=key, address=self.ip, eni_id=self.alloc.eni_id, pod=self.req.pod, netns=self.ns.path
        )


@dataclass
class NodeEnv:
    vpc: Vpc
    nsf: NetnsFactory
    runner: asyncio.Runner
    hostnet: HostNetwork
    podnet: LinuxPodNetwork
    eni: AttachedEni  # the secondary ENI, device 1, table 2
    vpc_cidr: str
    free: dict[bool, list[str]]  # on_secondary -> addresses EC2 assigned and no pod holds
    guard: NetnsGuard
    pods: list[Pod] = field(default_factory=list)
    timings: dict[str, list[float]] = field(default_factory=dict)

    @property
    def node(self) -> Node:
        return self.vpc.node

    @property
    def ns(self) -> Netns:
        return self.vpc.node_ns

    @property
    def remote_ip(self) -> str:
        return self.vpc.dp.remote_ip

    @property
    def internet_ip(self) -> str:
        return self.vpc.dp.internet_ip

    def run(self, coro: Coroutine[Any, Any, T], timing: str | None = None) -> T:
        started = time.perf_counter()
        result = self.runner.run(coro)
        if timing:
            self.timings.setdefault(timing, []).append(time.perf_counter() - started)
        return result

    def timed(self, timing: str, func: Any, *args: Any) -> Any:
        started = time.perf_counter()
        result = func(*args)
        self.timings.setdefault(timing, []).append(time.perf_counter() - started)
        return result

    @property
    def route_tables(self) -> dict[str, int]:
        return {self.node.primary_eni_id: MAIN_TABLE, self.eni.eni_id: self.eni.table}

    def request(self, ns: Netns, name: str | None, op: Op = Op.ADD, **extra: Any) -> Request:
        pod = PodRef(namespace="default", name=name) if name else PodRef()
        return Request(
            op=op,
            network=NETWORK,
            container_id=secrets.token_hex(16),
            ifname=POD_IFNAME,
            netns=ns.path,
            pod=pod,
            **extra,
        )

    def open_netns(self, ns: Netns) -> NetnsFd:
        """``ns`` opened (the plugin's part) and checked (ipamd's); the caller closes it."""
        fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
        checked = self.guard.check(fd, ns.path)
        if isinstance(checked, str):
            os.close(fd)
            raise AssertionError(checked)
        return checked

    def add_pod(self, *, on_secondary: bool, name: str | None = "") -> Pod:
        """A pod namespace and an ADD through LinuxPodNetwork for an address EC2 gave the chosen ENI."""
        ns = self.nsf.netns("pod")
        fd = self.open_netns(ns)
        address = self.free[on_secondary].pop()
        eni_id, device = (self.eni.eni_id, 1) if on_secondary else (self.node.primary_eni_id, 0)
        alloc = AllocationResult(
            ipv4=address,
            prefix_len=32,
            gateway="169.254.1.1",
            eni_id=eni_id,
            device_number=device,
            route_table=0,
            container_ifname=POD_IFNAME,
            mtu=9001,
            netns=ns.path,
        )
        req = self.request(ns, f"web-{secrets.token_hex(3)}" if name == "" else name)
        try:
            plumbed = self.run(self.podnet.setup(alloc, req, fd), "pod setup")
        except BaseException:
            self.free[on_secondary].append(address)
            os.close(fd.fd)
            ns.remove()
            raise
        pod = Pod(ns, fd, req, plumbed, on_secondary)
        self.pods.append(pod)
        return pod

    def remove_pod(self, pod: Pod, *, timing: str | None = "pod teardown") -> None:
        self.run(self.podnet.teardown(pod.alloc, pod.req, pod.fd), timing)
        self.forget(pod)

    def forget(self, pod: Pod) -> None:
        """A pod torn down by the test itself: its namespace goes, its address is free again."""
        os.close(pod.fd.fd)
        pod.ns.remove()
        self.pods.remove(pod)
        self.free[pod.on_secondary].append(pod.ip)

    def reconcile(self, pods: list[Pod] | None = None) -> list[str]:
        """A reconciler pass over ``pods`` (default: every live pod); returns what it fixed."""
        held = [p.allocation for p in (self.pods if pods is None else pods)]
        report = self.timed("host reconcile", self.hostnet.reconcile, held, self.route_tables)
        assert report.unresolved == (), report.unresolved
        return list(report.fixed)

    def print_timings(self) -> None:
        print("\nipamd plumbing timings (this run, ms): op  n  median  max")
        for op, values in self.timings.items():
            print(
                f"  {op:<22} {len(values):>3} {statistics.median(values) * 1e3:8.2f} {max(values) * 1e3:8.2f}"
            )


def _assign(vpc: Vpc, eni_id: str, count: int) -> list[str]:
    answer = vpc.ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=count
    )
    return [a["PrivateIpAddress"] for a in answer["AssignedPrivateIpAddresses"]]


@contextlib.contextmanager
def node_env() -> Iterator[NodeEnv]:
    """An m5.large node set up by HostNetwork (host, then a boto3-attached secondary ENI), ready for pods."""
    sweep_dataplane(PREFIX)
    try:
        with contextlib.ExitStack() as stack:
            cloud = stack.enter_context(LocalCloud())
            dp = stack.enter_context(VpcDataplane(cloud, prefix=PREFIX))
            node = cloud.add_node("m5.large")
            dp.attach_node(node.instance_id)
            vpc = Vpc(cloud, dp, cloud.client(), node)
            nsf = stack.enter_context(NetnsFactory(PREFIX))
            runner = stack.enter_context(asyncio.Runner())
            vpc_cidr = cloud.default_network()[0].cidr
            hostnet = HostNetwork(
                settings(),
                primary_mac=node.mac,
                primary_ipv4=node.primary_ip,
                vpc_cidrs=[vpc_cidr],
                netns=vpc.node_ns.path,
            )
            eni = create_and_attach_eni(vpc, node, 1)
            stack.callback(detach_and_delete_eni, vpc, eni)
            free = {
                False: _assign(vpc, node.primary_eni_id, ADDRESSES_PER_ENI),
                True: _assign(vpc, eni.eni_id, ADDRESSES_PER_ENI),
            }
            dp.wait_synced()
            env = NodeEnv(
                vpc,
                nsf,
                runner,
                hostnet,
                LinuxPodNetwork.from_settings(settings(), netns=vpc.node_ns.path),
                eni,
                vpc_cidr,
                free,
                NetnsGuard(node_namespaces=[vpc.node_ns.path]),
            )
            env.timed("host setup_host", hostnet.setup_host)
            env.timed(
                "host setup_eni",
                hostnet.setup_eni,
                eni.eni_id,
                eni.mac,
                eni.primary_ip,
                eni.subnet_cidr,
                eni.device_index,
            )
            try:
                yield env
            finally:
                for pod in list(env.pods):
                    with contextlib.suppress(Exception):
                        env.remove_pod(pod, timing=None)
    finally:
        sweep_dataplane(PREFIX)  # a no-op unless a close above failed half-way
