"""An outside tester's cases, through the real plugin and the real ipamd of an emulated node: the
node's own namespace is never taken for a pod's, whatever CNI_NETNS, CNI_IFNAME or verb.

The plugin runs in the node's namespace, as a runtime on the node runs it, so ``CNI_NETNS=/proc/self/ns/net``
names the node's (and ipamd's: it runs there with hostNetwork). Before, ipamd opened that path in its own
process, took the node for the pod and plumbed it: the node's default route replaced, another pod's host veth
or ``eth0`` deleted as "leftovers", and ADD exited 0. Now each case is CNI error code 4 naming the problem;
the node's default route, ``eth0``, the other pod's veth and traffic are untouched, and ipamd assigned
nothing (the leak check after every test compares the node's links, rules and routes as well).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vpccni.testing.cluster import ClusterNode, EmulatedCluster, Pod
from vpccni.testing.cluster_node import request_config
from vpccni.wire.cnicodes import INVALID_ENV

MAIN_TABLE = 254


def node_state(node: ClusterNode) -> dict[str, Any]:
    """What the tester saw destroyed: the default route, eth0, every host veth (names and indexes)."""
    with node.netns.iproute() as ipr:
        links = {str(link.get_attr("IFLA_IFNAME")): link["index"] for link in ipr.link("dump")}
        default = [(r.get_attr("RTA_GATEWAY"), r.get_attr("RTA_OIF"))
                   for r in ipr.route("dump", table=MAIN_TABLE) if r["dst_len"] == 0]
    return {"default": default, "eth0": links.get("eth0"),
            "veths": {name: index for name, index in links.items() if not name.startswith(("eth", "lo"))}}


def refused(run: Any, says: str) -> None:
    assert run.returncode == 1, run.describe()
    assert run.error["code"] == INVALID_ENV and "CNI_NETNS" in run.error["msg"], run.describe()
    assert says in run.error["msg"], run.describe()


def test_the_nodes_own_namespace_is_refused_whatever_the_ifname_or_verb(cluster: EmulatedCluster) -> None:
    node = cluster.nodes[0]
    victim: Pod = cluster.add_pod(node, "default", "victim")
    try:
        before = node_state(node)
        assigned = node.pool()["totals"]["assigned"]
        assert before["eth0"] is not None and before["default"] and victim.host_ifname in before["veths"]
        own = "/proc/self/ns/net"  # the plugin's, in the node: the node's, and ipamd's
        says = "is ipamd's own network namespace"
        for ifname in ("eth0", victim.host_ifname, "pl7new0"):
            refused(cluster.run_plugin(node, "ADD", container_id=f"tester-{ifname}", pod_netns=own,
                                       ifname=ifname, args=victim.cni_args), says)
        prev = {"prevResult": victim.result}
        check = cluster.run_plugin(node, "CHECK", request_config(node.conflist, inject=prev),
                                   container_id=victim.container_id, pod_netns=own, args=victim.cni_args)
        refused(check, says)
        for ifname in ("eth0", victim.host_ifname):  # the victim's own key, even: nothing torn down
            refused(cluster.run_plugin(node, "DEL", request_config(node.conflist, inject=prev),
                                       container_id=victim.container_id, pod_netns=own, ifname=ifname,
                                       args=victim.cni_args), says)
        ipamd_own = f"/proc/{node.ipamd_pid}/ns/net"
        refused(cluster.run_plugin(node, "ADD", container_id="tester-ipamd", pod_netns=ipamd_own,
                                   args=victim.cni_args), says)
        assert node_state(node) == before
        assert node.pool()["totals"]["assigned"] == assigned
        assert cluster.remote_to_pod(victim) == cluster.remote_ip  # the other pod's traffic still flows
        assert cluster.pod_to_remote(victim) == victim.ip
    finally:
        cluster.delete_pod(victim)


def test_what_is_no_network_namespace_is_refused(cluster: EmulatedCluster, tmp_path: Path) -> None:
    node = cluster.nodes[0]
    before = node_state(node)
    regular = str(tmp_path / "netns")
    Path(regular).write_text("")
    cases = {
        "/proc/self/ns/mnt": "is a mnt namespace, not a network namespace",  # ipamd's check
        regular: "is not a namespace (not on nsfs)",  # a regular file: opened and passed, ipamd refuses
        "/dev/null": "is not a namespace file",  # never opened: the plugin's check
        "/run/netns/ee-no-such-netns": "does not exist",
    }
    for path, says in cases.items():
        refused(cluster.run_plugin(node, "ADD", container_id="tester-not-net", pod_netns=path,
                                   args="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=t"), says)
    assert node_state(node) == before
