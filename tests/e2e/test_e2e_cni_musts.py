"""Every MUST of the CNI spec's operations (ADD, DEL, CHECK, GC, STATUS, VERSION) against the real plugin and
a real ipamd on an emulated node.

ADD/CHECK/DEL go through the real libcni (the runtime side: its cache feeds prevResult to CHECK and DEL);
GC and STATUS, which libcni 1.1.2 predates, are exec'd the way a CNI 1.1 runtime would (request derived
from the same conflist at its highest version). What ipamd holds is read from its introspection; what
the node holds, from the node's namespace; a pod that lost its route is shown unable to reach anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import Runtime, host_routing, link_exists, wait_until
from tests.libcni import gc_config
from vpccni.localcloud.vpc.netns import Netns
from vpccni.testing.cluster import ClusterNode, EmulatedCluster
from vpccni.testing.cluster_node import request_config
from vpccni.wire.cnicodes import CHECK_FAILED, INVALID_ENV, NO_IP, STATUS_UNAVAILABLE
from vpccni.wire.protocol import spool_dir_for

# Every MUST holds on both clouds: the same plugin, the same ipamd, EC2's or Azure's pool behind it.
pytestmark = pytest.mark.parametrize("cluster", ["aws", "azure"], indirect=True, scope="module")

LIBCNI_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")  # every version libcni 1.1.2 parses
BANDWIDTH = {
    "ingressRate": 8_000_000,
    "ingressBurst": 800_000,
    "egressRate": 8_000_000,
    "egressBurst": 800_000,
}
GATEWAY = "169.254.1.1"


def released(node: ClusterNode, ip: str, eni_id: str | None = None) -> bool:
    """ipamd no longer assigns ``ip`` but still holds it (cooling or free) -- on ``eni_id`` if given."""
    info = node.address_info(ip)
    return info is not None and info.state != "assigned" and (eni_id is None or info.eni_id == eni_id)


def status(cluster: EmulatedCluster, node: ClusterNode) -> Any:
    return cluster.run_plugin(node, "STATUS", request_config(node.conflist, cni_version="1.1.0"))


def held_by(node: ClusterNode, container_id: str) -> list[str]:
    """The addresses ipamd assigns to ``container_id`` (from its introspection)."""
    return [
        address
        for eni in node.enis().values()
        for block in eni["AvailableIPv4Cidrs"].values()
        for address, entry in block["IPAddresses"].items()
        if entry["IPAMKey"]["containerID"] == container_id
    ]


def pod_side(ns: Netns) -> tuple[str, str]:
    """The pod namespace's links (name, kind) and addresses, as text."""
    links = " ".join(
        f"{line.split(': ')[1]}:{'bridge' if 'bridge' in line else ''}"
        for line in ns.run("ip", "-d", "-o", "link", "show").stdout.splitlines()
    )
    return links, ns.run("ip", "-o", "addr", "show").stdout


# --- ADD -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ifname", ["eth0", "lo"], ids=["a bridge holds eth0", "CNI_IFNAME=lo"])
def test_add_over_an_interface_the_pod_already_has_fails_with_4_and_changes_nothing(
    cluster: EmulatedCluster, ifname: str
) -> None:
    node = cluster.nodes[0]
    sandbox = cluster.pod_netns()
    container_id = f"taken-{ifname}"
    try:
        if ifname == "eth0":  # the pod's own bridge, with an address: not ours to replace
            sandbox.run("ip", "link", "add", "eth0", "type", "bridge")
            sandbox.run("ip", "addr", "add", "192.0.2.1/24", "dev", "eth0")
            sandbox.run("ip", "link", "set", "eth0", "up")
        before = pod_side(sandbox)
        run = cluster.run_plugin(
            node, "ADD", container_id=container_id, pod_netns=sandbox.path, ifname=ifname,
            args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=taken",
        )
        assert run.returncode != 0 and run.error["code"] == INVALID_ENV, run.describe()
        msg = run.error["msg"]
        assert msg.startswith("invalid CNI_IFNAME: ") and f"{ifname} already exists" in msg, run.describe()
        assert pod_side(sandbox) == before
        assert held_by(node, container_id) == [], "the address went back to the pool"
    finally:
        sandbox.remove()


# --- DEL -----------------------------------------------------------------------------------------------


def test_repeated_del_succeeds_and_releases_the_address(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[0]
    pod = pods.add(node)
    eni = node.address_info(pod.ip).eni_id  # type: ignore[union-attr]
    for _ in range(3):
        run = pods.delete(pod)
        assert run.returncode == 0, run.describe()
    assert released(node, pod.ip, eni)
    assert host_routing(node, pod.ip) == [] and not link_exists(node, pod.host_ifname)
    never_added = cluster.run_plugin(node, "DEL", container_id="never-added", args="IgnoreUnknown=1")
    assert never_added.ok, never_added.describe()


def test_del_with_an_empty_netns_releases_the_address(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[1]
    pod = pods.add(node)
    run = pods.delete(pod, netns="")  # the sandbox is already gone: CNI_NETNS is empty
    assert run.returncode == 0, run.describe()
    assert released(node, pod.ip)
    assert host_routing(node, pod.ip) == [] and not link_exists(node, pod.host_ifname)


def test_del_without_prev_result_releases_the_address(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[0]
    pod = pods.add(node)
    # Our plugin alone, stdin derived from the conflist with nothing injected: no prevResult at all.
    run = cluster.run_plugin(
        node, "DEL", container_id=pod.container_id, pod_netns=pod.netns.path, args=pod.args
    )
    assert run.ok, run.describe()
    assert released(node, pod.ip)
    assert host_routing(node, pod.ip) == [] and not link_exists(node, pod.host_ifname)


def test_del_while_ipamd_is_down_then_restart_puts_the_address_back(
    cluster: EmulatedCluster, pods: Runtime
) -> None:
    node = cluster.nodes[1]
    pod = pods.add(node)
    eni = node.address_info(pod.ip).eni_id  # type: ignore[union-attr]
    assert host_routing(node, pod.ip)
    cluster.stop_ipamd(node)
    try:
        for _ in range(2):  # repeated, too
            run = pods.delete(pod)
            assert run.returncode == 0, run.describe()
        # The plugin tore down the host routing itself, from the cached result libcni sent as prevResult.
        assert host_routing(node, pod.ip) == []
        spool = spool_dir_for(node.socket_path)
        assert os.listdir(spool), "no release record was spooled"
        pod.netns.remove()  # the runtime removes the sandbox
    finally:
        cluster.start_ipamd(node)
    # ipamd replayed the record: the address is back in the pool, on the same ENI, nothing re-plumbed.
    wait_until(f"{pod.ip} back in the pool", lambda: released(node, pod.ip, eni))
    wait_until("the release record consumed", lambda: not os.listdir(spool))
    assert host_routing(node, pod.ip) == [] and not link_exists(node, pod.host_ifname)


# --- CHECK ---------------------------------------------------------------------------------------------


def test_check_fails_and_names_a_route_deleted_by_hand(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[0]
    # With bandwidth's runtimeConfig: Debian's bandwidth 1.1.1 CHECK panics without one (a nil dereference in
    # its CHECK).
    pod = pods.add(node, cap_args={"bandwidth": BANDWIDTH})
    healthy = pods.check(pod)
    assert healthy.returncode == 0, healthy.describe()
    with pod.netns.iproute() as ipr:
        ipr.route("del", dst="0.0.0.0", dst_len=0, gateway=GATEWAY)
    assert not cluster.ping(pod, cluster.remote_ip)  # the damage is real: the pod is cut off
    broken = pods.check(pod)
    assert broken.returncode != 0, broken.describe()
    error = broken.json()
    assert error["code"] == CHECK_FAILED, error
    assert f"default route via {GATEWAY} dev eth0 missing" in error["msg"], error


# --- GC ------------------------------------------------------------------------------------------------


def test_gc_releases_exactly_the_stale_allocations(cluster: EmulatedCluster, pods: Runtime) -> None:
    node = cluster.nodes[1]
    conf = pods.write_conflist(node, "eegc", name="eegc")  # its own network: GC is per network
    conflist = json.loads(conf.read_text())
    keep, stale1, stale2 = (pods.add(node, conf=conf) for _ in range(3))
    bystander = pods.add(node)  # in the node's main network, which this GC must not touch

    # As libcni >= 1.2 sends it: both the spec's key and the legacy cni.dev/attachments.
    gc = cluster.run_plugin(node, "GC", gc_config(conflist, [(keep.container_id, "eth0")]))
    assert gc.ok, gc.describe()
    for pod in (stale1, stale2):
        assert released(node, pod.ip), pod.ip
        assert host_routing(node, pod.ip) == [] and not link_exists(node, pod.host_ifname)
    for pod in (keep, bystander):
        assert node.address_info(pod.ip).state == "assigned"  # type: ignore[union-attr]
        assert link_exists(node, pod.host_ifname)
    assert cluster.pod_to_remote(keep) == keep.ip

    # Only the legacy key (a runtime from before cni#1101): honoured the same way.
    late = pods.add(node, conf=conf)
    legacy = {"cni.dev/attachments": [{"containerID": keep.container_id, "ifname": "eth0"}]}
    gc = cluster.run_plugin(node, "GC", request_config(conflist, cni_version="1.1.0", inject=legacy))
    assert gc.ok, gc.describe()
    assert released(node, late.ip) and not link_exists(node, late.host_ifname)
    assert node.address_info(keep.ip).state == "assigned"  # type: ignore[union-attr]


# --- STATUS --------------------------------------------------------------------------------------------


def test_status_fails_with_50_while_ipamd_is_down(cluster: EmulatedCluster) -> None:
    node = cluster.nodes[0]
    up = status(cluster, node)
    assert (up.returncode, up.stdout) == (0, ""), up.describe()
    cluster.stop_ipamd(node)
    try:
        down = status(cluster, node)
        assert down.returncode != 0 and down.error["code"] == STATUS_UNAVAILABLE, down.describe()
        assert node.socket_path in down.stdout and down.error["cniVersion"] == "1.1.0"
    finally:
        cluster.start_ipamd(node)
    assert status(cluster, node).ok


def test_status_fails_with_50_and_the_reason_when_the_pool_is_exhausted(
    cluster: EmulatedCluster, pods: Runtime
) -> None:
    # t3.nano: 2 addresses per ENI, so with MAX_ENI=1 the pool is one pod address, ever. On Azure the
    # limit a node meets is max pods (a NIC holds 255 pod addresses).
    if cluster.cloud_name == "azure":
        node = cluster.add_node("Standard_D2s_v5", {"VPCCNI_MAX_PODS": "1"})
        reason, said = "max_pods", "max pods"
    else:
        node, reason, said = cluster.add_node("t3.nano", {"MAX_ENI": "1"}), "eni_limit", "ENI limit"
    try:
        assert status(cluster, node).ok
        pods.add(node)

        def exhausted() -> Any:
            run = status(cluster, node)
            return run if not run.ok and f"reason={reason}" in run.error.get("details", "") else None

        run = wait_until(f"STATUS to report the {said}", exhausted)
        assert run.error["code"] == STATUS_UNAVAILABLE and said in run.error["msg"], run.describe()
        # And an ADD now fails with ipamd's reason, as "no IP" (100), not "try again" (11).
        sandbox = cluster.pod_netns()
        try:
            more = cluster.run_plugin(
                node, "ADD", container_id="one-too-many", pod_netns=sandbox.path, args="IgnoreUnknown=1"
            )
        finally:
            sandbox.remove()
        assert more.error["code"] == NO_IP and said in more.error["msg"], more.describe()
    finally:
        for pod in [p for p in pods.pods if p.node is node]:
            pods.remove(pod)
        cluster.remove_node(node)


# --- result shapes -------------------------------------------------------------------------------------


def only_us(pods: Runtime, node: ClusterNode, version: str) -> Path:
    conflist = {"cniVersion": version, "name": node.conflist["name"], "plugins": node.conflist["plugins"][:1]}
    path = Path(node.workdir) / "cni" / f"v{version}.conflist"
    path.write_text(json.dumps(conflist))
    return path


def assert_result_shape(result: dict[str, Any], version: str, netns: str, *, mtu: bool) -> None:
    host, container = result["interfaces"]
    assert result["cniVersion"] == version
    assert "sandbox" not in host and host["mac"] and host["name"]
    assert (container["name"], container["sandbox"]) == ("eth0", netns) and container["mac"]
    assert ("mtu" in host and "mtu" in container) is mtu
    [ip] = result["ips"]
    assert ip["address"].endswith("/32") and (ip["gateway"], ip["interface"]) == (GATEWAY, 1)
    assert ip.get("version") == ("4" if version < "1.0.0" else None)
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}]


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
def test_result_shape_of_every_version_through_libcni(
    cluster: EmulatedCluster, pods: Runtime, version: str
) -> None:
    node = cluster.nodes[0]
    pod = pods.add(node, conf=only_us(pods, node, version))
    assert_result_shape(pod.result, version, pod.netns.path, mtu=False)
    assert cluster.pod_to_remote(pod) == pod.ip
    if version >= "0.4.0":
        check = pods.check(pod)
        assert check.returncode == 0, check.describe()


def test_result_shape_of_1_1_0_through_the_harness(cluster: EmulatedCluster) -> None:
    node = cluster.nodes[1]
    ns = cluster.pod_netns()
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=v110"
    try:
        add = cluster.run_plugin(
            node, "ADD", container_id="v110", pod_netns=ns.path, args=args, cni_version="1.1.0"
        )
        assert add.ok, add.describe()
        result = add.json()
        assert_result_shape(result, "1.1.0", ns.path, mtu=True)
        pod_ip = result["ips"][0]["address"].split("/")[0]
        assert node.address_info(pod_ip).state == "assigned"  # type: ignore[union-attr]
        delete = cluster.run_plugin(
            node,
            "DEL",
            container_id="v110",
            pod_netns=ns.path,
            args=args,
            cni_version="1.1.0",
            inject={"prevResult": result},
        )
        assert delete.ok, delete.describe()
        assert released(node, pod_ip)
    finally:
        ns.remove()
