"""``vpccni bench soak``, short (what CI runs; the long run is in vpccni.benchmarks.soak's docstring): the
real CLI, 8 pod loops on one emulated node for 45 s while ipamd is SIGKILLed and EC2 faults come and go,
then the audit. Checks that the audit is clean, that the chaos happened, that every exec is counted, and
that nothing is left behind; never judges the times.

And the audit itself, on a node where the test makes each kind of trouble it must find: a pod left out of
the pods reported up (its address leaked, its veth, route, rule and namespace stray), one address reported
for two pods, and a veth, a rule and a namespace nobody made through us. A clean audit means something
only if a dirty node fails it.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from vpccni.benchmarks.soak_audit import audit, audit_until_clean
from vpccni.benchmarks.soak_chaos import Outcomes, Plugin, Pod
from vpccni.testing.cluster import ClusterNode, EmulatedCluster, sweep_cluster

CLI = [sys.executable, "-m", "vpccni.cli", "bench", "soak"]
LOOPS = 8
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def ours(prefix: str = "sk") -> set[str]:
    return set(glob.glob(f"/run/netns/{prefix}*")) | set(glob.glob(f"/tmp/{prefix}*-cluster-*"))


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    before = ours()
    done = subprocess.run([*CLI, "--json", "--loops", str(LOOPS), "--duration", "45", "--floor-seconds", "5",
                           "--kill-every", "10", "--faults-every", "6", "--instance-type", "m5.xlarge",
                           "--seed", "7"], capture_output=True, text=True, timeout=600)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    print(lines[-1])  # the figures, for whoever reads the test log
    parsed: dict[str, Any] = json.loads(lines[-1])
    assert done.returncode == (0 if parsed["clean"] else 1), done.stderr
    assert ours() == before, "the soak left namespaces or directories behind"
    return parsed


@needs_root
def test_after_the_chaos_nothing_is_leaked_held_twice_or_left_behind(report: dict[str, Any]) -> None:
    for name in ("audit_with_pods_up", "audit_after_all_deleted"):
        found = report[name]
        assert found["problems"] == 0, (name, found)
        assert found["leaked"] == found["doubly_held"] == found["lost"] == [], found
        assert found["stray_links"] == found["stray_routes"] == found["stray_rules"] == [], found
    assert report["audit_with_pods_up"]["pods_up"] == LOOPS, "every loop ends with its pod up"
    assert report["audit_after_all_deleted"]["pods_up"] == 0
    assert report["final_dels"]["pods"] == LOOPS and report["final_dels"]["never_done"] == 0
    assert report["clean"] is True


@needs_root
def test_the_chaos_happened_and_every_exec_is_counted(report: dict[str, Any]) -> None:
    soak = report["soak"]
    assert soak["ipamd_kills"] >= 1 and sum(soak["ec2_fault_windows"].values()) >= 1, soak
    for command in ("ADD", "DEL"):
        figures = soak[command]
        assert figures["execs"] == figures["ok"] + figures["failed"] == sum(figures["outcomes"].values())
        assert figures["ok"] >= 1 and figures["ok_latency_ms"]["p50"] > 0, figures
    # Each cycle is one ADD; each sandbox whose pod did not stay up got DELs until one succeeded.
    assert soak["ADD"]["execs"] == soak["pod_cycles"]
    assert soak["DEL"]["ok"] == soak["pod_cycles"] - soak["pods_up_at_end"]
    assert soak["dels_never_done"] == [] and soak["loops_ended_without_pod"] == 0
    assert soak["harness_errors"] == {}, "every cycle reached the plugin"
    floor = report["floor"]
    assert floor["ADD"]["ok"] >= 1 and floor["ADD"]["ok_latency_ms"]["p50"] > 0, "the floor was measured"


# --- the audit finds what it must ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def dirty() -> Iterator[tuple[EmulatedCluster, ClusterNode]]:
    prefix = "sa" + secrets.token_hex(2)
    sweep_cluster(prefix)
    with EmulatedCluster([], prefix=prefix) as cluster:
        yield cluster, cluster.add_node("m5.large")
    assert sweep_cluster(prefix) == [], "the audit's cluster left something behind"


@needs_root
def test_the_audit_finds_leaks_doubles_and_strays(dirty: tuple[EmulatedCluster, ClusterNode]) -> None:
    cluster, node = dirty
    plugin = Plugin(cluster, node, Outcomes())
    netns = cluster.pod_netns()
    key, stdout = plugin.run("ADD", netns, "c" * 32, "up-0")
    assert key == "ok", stdout
    pod = Pod(netns, "c" * 32, "up-0", json.loads(stdout))
    # The warm pool may still be growing after the ADD (an ENI created, not yet attached): a healthy node
    # audits clean once that settles.
    healthy = audit_until_clean(cluster, node, [pod], cluster.prefix, plugin, timeout_s=30.0)
    assert healthy.problems == 0, f"a healthy node audits clean: {healthy}"

    # The pod not reported up: its address, veth, route, rule and namespace are all unaccounted for.
    forgotten = audit(cluster, node, [], cluster.prefix)
    assert [line.split(" on ")[0] for line in forgotten.leaked] == [pod.ip]
    assert forgotten.stray_links == [f"{pod.host_ifname}: no pod up uses it"]
    assert forgotten.stray_routes == [f"{pod.ip}/32 dev {pod.host_ifname}"]
    assert forgotten.stray_rules == [f"rule 512 {pod.ip}"] and forgotten.stray_namespaces == [netns.name]
    # Two pods reported with one address: held twice, and the second one's address is not its own.
    twin = Pod(netns, "e" * 32, "up-1", pod.result)
    doubled = audit(cluster, node, [pod, twin], cluster.prefix)
    assert doubled.doubly_held == [f"{pod.ip} held by pods up-0, up-1"]
    assert doubled.lost == [f"up-1 has {pod.ip}, ipamd holds nothing for it"]

    # What others leave on the node: a veth with our prefix, a rule 512, a pod namespace.
    node.netns.run("ip", "link", "add", "eni0123456789x", "type", "veth", "peer", "name", "sastray0")
    node.netns.run("ip", "rule", "add", "pref", "512", "to", "10.255.0.9", "lookup", "main")
    stray = cluster.pod_netns()
    try:
        found = audit(cluster, node, [pod], cluster.prefix)
        assert found.stray_links == ["eni0123456789x: no pod up uses it"]
        assert found.stray_rules == ["rule 512 10.255.0.9"] and found.stray_namespaces == [stray.name]
        assert found.leaked == found.lost == found.doubly_held == found.stray_routes == [], found
    finally:
        stray.remove()
        node.netns.run("ip", "link", "del", "eni0123456789x")
        node.netns.run("ip", "rule", "del", "pref", "512", "to", "10.255.0.9")
        assert plugin.delete(netns, pod.container_id, pod.name, pod.result, give_up_at=0.0)
        netns.remove()
    # The DEL may wake the pool into a change EC2 makes before ipamd records it: wait for them to agree.
    final = audit_until_clean(cluster, node, [], cluster.prefix, plugin, timeout_s=30)
    assert final.problems == 0, f"all of it is gone again: {final}"
