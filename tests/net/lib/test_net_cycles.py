"""Many pods, repeated and concurrent: the node converges every time, and what each operation costs.

The per-operation figures are printed (run with ``-s``), never asserted: the machine is shared.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tests.net.conftest import PRIMARY, REMOTE_IP, SECONDARY, Topology
from tests.net.lib.test_net_pod import node_state, pod_links
from vpccni.localcloud.vpc.netns import ping, whoami
from vpccni.net.iptables import apply_snat_rules
from vpccni.net.pod import check_pod, setup_pod, teardown_pod

CYCLES = 20
T = TypeVar("T")


class Timings:
    """Wall and CPU time per named operation (CPU: this process, kernel work in its syscalls included)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, func: Callable[[], T]) -> T:
        wall, cpu = time.perf_counter(), time.process_time()
        result = func()
        sample = (time.perf_counter() - wall, time.process_time() - cpu)
        self.samples.setdefault(name, []).append(sample)
        return result

    def report(self) -> None:
        print()
        for name, samples in self.samples.items():
            wall = sorted(w * 1000 for w, _ in samples)
            cpu = sorted(c * 1000 for _, c in samples)
            p90 = wall[max(0, int(len(wall) * 0.9) - 1)]
            print(
                f"{name:<22} n={len(wall):<3} wall p50={statistics.median(wall):6.2f} p90={p90:6.2f} ms"
                f"   cpu p50={statistics.median(cpu):6.2f} ms"
            )


def test_repeated_setup_and_teardown_converge_every_time(topo: Topology):
    ns = topo.nsf.netns("pod")
    topo.assign("10.0.1.60", SECONDARY)
    att = topo.attachment(ns, "10.0.1.60", SECONDARY, "cycles")
    before = node_state(topo.node)
    timings = Timings()
    node = topo.node.path
    try:
        for _ in range(CYCLES):
            timings.run("setup_pod", lambda: setup_pod(att, netns=node))
            assert timings.run("check_pod", lambda: check_pod(att, netns=node)) == []
            timings.run("teardown_pod", lambda: teardown_pod(att, netns=node))
            assert node_state(topo.node) == before
            assert pod_links(ns) == ["lo"]
        setup_pod(att, netns=node)
        assert whoami(ns, REMOTE_IP, topo.remote_server.port) == att.ipv4
    finally:
        teardown_pod(att, netns=node)
        topo.unassign(att.ipv4)
    for i in range(6):
        settings = topo.snat_settings(exclude_snat_cidrs=(f"192.0.2.{i * 16}/28",))
        apply = functools.partial(apply_snat_rules, settings, netns=node)
        assert timings.run("apply SNAT (changed)", apply)
        assert not timings.run("apply SNAT (no-op)", apply)
    apply_snat_rules(topo.snat_settings(), netns=node)
    timings.report()


def test_concurrent_setups_from_threads_all_work(topo: Topology):
    """ipamd plumbs from worker threads: every thread's netns switch must stay its own."""
    pods = [(topo.nsf.netns("pod"), f"10.0.1.{70 + i}", PRIMARY if i % 2 else SECONDARY) for i in range(8)]
    atts = []
    for ns, ip, eni in pods:
        topo.assign(ip, eni)
        atts.append(topo.attachment(ns, ip, eni, f"concurrent-{ip}"))
    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda att: setup_pod(att, netns=topo.node.path), atts))
        elapsed = time.perf_counter() - start
        for (ns, ip, _), att in zip(pods, atts, strict=True):
            assert check_pod(att, netns=topo.node.path) == []
            assert whoami(ns, REMOTE_IP, topo.remote_server.port) == ip
        assert ping(pods[0][0], pods[1][1])
        print(f"\n8 concurrent setup_pod from 8 threads: {elapsed * 1000:.1f} ms in all")
    finally:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda att: teardown_pod(att, netns=topo.node.path), atts))
        for _, ip, _ in pods:
            topo.unassign(ip)
    assert all(pod_links(ns) == ["lo"] for ns, _, _ in pods)


def test_per_pod_cost_does_not_grow_with_the_pods_on_the_node(topo: Topology, add_pod):
    """CPU per setup/teardown of one pod beside 0 and beside 60 others, printed (run with ``-s``). The
    per-pod paths send O(1) netlink requests, no link or rule dump, so the two lines should read alike;
    before vpccni.net.rtnl a teardown cost 7 ms of CPU beside 20 pods and 15 ms beside 100."""
    node = topo.node.path
    ns = topo.nsf.netns("pod")
    topo.assign("10.0.1.99", SECONDARY)
    att = topo.attachment(ns, "10.0.1.99", SECONDARY, "crowd")
    timings = Timings()
    try:
        for crowd in (0, 60):
            while len(topo.pods) < crowd:
                add_pod(f"10.0.1.{100 + len(topo.pods)}", SECONDARY if len(topo.pods) % 2 else PRIMARY)
            for _ in range(10):
                timings.run(f"setup, {crowd} others", lambda: setup_pod(att, netns=node))
                timings.run(f"teardown, {crowd} others", lambda: teardown_pod(att, netns=node))
                assert pod_links(ns) == ["lo"]
        setup_pod(att, netns=node)
        assert whoami(ns, REMOTE_IP, topo.remote_server.port) == att.ipv4
        assert whoami(topo.pods[-1].ns, REMOTE_IP, topo.remote_server.port) == topo.pods[-1].ip
    finally:
        teardown_pod(att, netns=node)
        topo.unassign(att.ipv4)
    timings.report()
