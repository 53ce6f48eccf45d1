"""Pods on two emulated nodes, plumbed through the real libcni with portmap, tuning and bandwidth chained
after us, proven by traffic and by the source address each receiver saw.

The fleet fills each node's primary ENI (m5.large: 9 pod addresses per ENI, t3.medium: 5) and puts one
more pod on a secondary ENI; which ENI holds each pod is read from ipamd's introspection and checked
against EC2. The VPC router enforces EC2's source/destination check, so a pod whose traffic left by the
wrong ENI, or a SNAT to the wrong address, fails the probe instead of passing by accident.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.support import POD_SYSCTL, Runtime, RuntimePod, in_vpc, link_exists
from vpccni.testing.cluster import ClusterNode, EmulatedCluster

ADDRESSES_PER_ENI = {"m5.large": 9, "t3.medium": 5}  # (IPv4 per ENI) - 1: the ENI's own address
BANDWIDTH = {
    "ingressRate": 8_000_000,
    "ingressBurst": 800_000,
    "egressRate": 8_000_000,
    "egressBurst": 800_000,
}


@dataclass
class NodePods:
    node: ClusterNode
    pods: list[RuntimePod]
    eni: dict[str, str]  # pod address -> ENI holding it, per ipamd

    def on_primary(self) -> list[RuntimePod]:
        return [p for p in self.pods if self.eni[p.ip] == self.node.primary_eni_id]

    def on_secondary(self) -> list[RuntimePod]:
        return [p for p in self.pods if self.eni[p.ip] != self.node.primary_eni_id]

    @property
    def two(self) -> tuple[RuntimePod, RuntimePod]:
        """One pod on the primary ENI, one on a secondary ENI."""
        return self.on_primary()[0], self.on_secondary()[0]


@pytest.fixture(scope="module")
def fleet(cluster: EmulatedCluster, runtime: Runtime) -> Iterator[list[NodePods]]:
    """Per node: pods through libcni until one lands on a secondary ENI (bounded by the primary's size)."""
    made: list[NodePods] = []
    for node in cluster.nodes:
        group = NodePods(node, [], {})
        for _ in range(ADDRESSES_PER_ENI[node.instance_type] + 3):
            pod = runtime.add(node)
            info = node.address_info(pod.ip)
            assert info is not None and info.state == "assigned", (pod.ip, info)
            group.pods.append(pod)
            group.eni[pod.ip] = info.eni_id
            if info.eni_id != node.primary_eni_id:
                break
        made.append(group)
    yield made
    for group in made:
        for pod in group.pods:
            runtime.remove(pod)


def fleet_pods(fleet: list[NodePods]) -> list[RuntimePod]:
    return [pod for group in fleet for pod in group.two]


def test_pods_fill_the_primary_eni_then_go_to_a_secondary_one(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    for group in fleet:
        node = group.node
        per_eni = ADDRESSES_PER_ENI[node.instance_type]
        assert len(group.on_primary()) == per_eni, (node.instance_type, group.eni)
        assert len(group.on_secondary()) == 1, (node.instance_type, group.eni)
        enis = node.enis()
        secondary = group.on_secondary()[0]
        assert enis[group.eni[secondary.ip]]["DeviceNumber"] >= 1
        assert not enis[group.eni[secondary.ip]]["IsPrimary"]
        # EC2 agrees: each pod address is a secondary private address of the ENI ipamd named.
        ec2 = {
            e.eni_id: set(e.private_ips[1:])
            for e in cluster.cloud.server.eni_views(instance_id=node.instance_id)
        }
        for pod in group.pods:
            assert pod.ip in ec2[group.eni[pod.ip]], (pod.ip, group.eni[pod.ip])
            assert node.address_info(pod.ip).pod == f"default/{pod.name}"  # type: ignore[union-attr]


def test_pod_to_pod_across_nodes_arrives_with_the_pods_own_address(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    a, b = fleet
    for src in a.two:
        for dst in b.two:
            assert cluster.pod_to_pod(src, dst) == src.ip
            assert cluster.pod_to_pod(dst, src) == dst.ip


def test_pod_to_remote_vpc_host_arrives_with_the_pods_own_address(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    for pod in fleet_pods(fleet):
        assert cluster.pod_to_remote(pod) == pod.ip
        assert cluster.ping(pod, cluster.remote_ip)


def test_remote_vpc_host_reaches_the_pod_at_its_address(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    for pod in fleet_pods(fleet):
        assert cluster.remote_to_pod(pod) == cluster.remote_ip


def test_pod_to_internet_is_snatted_to_the_nodes_primary_address(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    assert not in_vpc(cluster.internet_ip)
    for group in fleet:
        for pod in group.two:
            assert cluster.pod_to_internet(pod) == group.node.primary_ip != pod.ip


def test_external_snat_leaves_internet_traffic_with_the_pods_address(
    cluster: EmulatedCluster, fleet: list[NodePods]
) -> None:
    a, b = fleet
    cluster.restart_ipamd(a.node, {"AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"})
    try:
        for pod in a.two:
            assert cluster.pod_to_internet(pod) == pod.ip  # the node no longer SNATs: something outside would
        for pod in b.two:  # the other node, default settings: still SNAT'd
            assert cluster.pod_to_internet(pod) == b.node.primary_ip
    finally:
        cluster.restart_ipamd(a.node, {})
    for pod in a.two:
        assert cluster.pod_to_internet(pod) == a.node.primary_ip


def test_host_port_through_portmap_reaches_the_pod(
    cluster: EmulatedCluster, fleet: list[NodePods], pods: Runtime
) -> None:
    for index, group in enumerate(fleet):
        host_port = 18080 + index
        ports = {"portMappings": [{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"}]}
        pod = pods.add(group.node, cap_args=ports)
        # The remote host dials the NODE's address; only portmap's DNAT can take it to the pod's server.
        seen = cluster.remote_to_host_port(group.node, host_port, pod, 8080)
        assert seen == cluster.remote_ip, (group.node.instance_type, pod.ip)


def test_tuning_sets_its_sysctl_in_the_pod(cluster: EmulatedCluster, fleet: list[NodePods]) -> None:
    key, value = POD_SYSCTL
    path = "/proc/sys/" + key.replace(".", "/")
    for pod in fleet_pods(fleet):
        assert pod.netns.run("cat", path).stdout.strip() == value
    # Control: a pod that only our plugin plumbed (no tuning in its chain) keeps the kernel default.
    bare = cluster.add_pod(cluster.nodes[0], "default", "no-tuning")
    try:
        assert bare.netns.run("cat", path).stdout.strip() != value
    finally:
        cluster.delete_pod(bare)


def test_bandwidth_shapes_the_pods_host_veth(
    cluster: EmulatedCluster, fleet: list[NodePods], pods: Runtime
) -> None:
    node = fleet[1].node
    pod = pods.add(node, cap_args={"bandwidth": BANDWIDTH})
    qdiscs = node.netns.run("tc", "qdisc", "show", "dev", pod.host_ifname).stdout
    assert "tbf" in qdiscs and "ingress" in qdiscs, qdiscs
    ifb = [i["name"] for i in pod.result["interfaces"] if i["name"].startswith("bwp")]
    assert len(ifb) == 1 and link_exists(node, ifb[0]), pod.result["interfaces"]
    assert "tbf" in node.netns.run("tc", "qdisc", "show", "dev", ifb[0]).stdout
    assert cluster.remote_to_pod(pod) == cluster.remote_ip  # shaped, still reachable
    run = pods.delete(pod)
    assert run.returncode == 0, run.describe()
    assert not link_exists(node, ifb[0]) and not link_exists(node, pod.host_ifname)
