"""Floors: what the hardware allows, measured in the same run as the figure they qualify.

The fsync floor is a loop of (overwrite a small file, fsync) in the benchmark's directory: one durable
write per operation with no rename and no directory fsync. A durable RPC without group commit costs more
than one such operation, so RPCs/s above the floor is what batching buys.

The process floor is exec -> exit of a command (a bare interpreter: what any plugin exec pays before its
first line); the veth floor is the netlink work one pod setup must do (``vpccni bench add``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vpccni.benchmarks.stats import LatencySummary


@dataclass(frozen=True)
class Floor:
    ops_per_s: float
    latency: LatencySummary


def fsync_floor(directory: str, seconds: float = 0.5, payload_bytes: int = 256) -> Floor:
    """Measure small-file fsyncs in ``directory`` for about ``seconds``; the file is removed after."""
    path = os.path.join(directory, f".fsync-floor-{os.getpid()}")
    payload = b"x" * payload_bytes
    samples: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        start = time.perf_counter()
        end = start + seconds
        now = start
        while now < end:
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            after = time.perf_counter()
            samples.append(after - now)
            now = after
        elapsed = now - start
    finally:
        os.close(fd)
        os.unlink(path)
    return Floor(len(samples) / elapsed if elapsed > 0 else 0.0, LatencySummary.of(samples))


def process_floor(argv: Sequence[str], runs: int, env: Mapping[str, str] | None = None) -> LatencySummary:
    """exec -> exit of ``argv``, ``runs`` times, after one untimed run (page cache, .pyc files).

    Spawned from this process, as the benchmarks spawn the plugin, so the cost of forking a large Python
    parent is in the floor as much as in the figure it qualifies."""
    def once() -> float:
        started = time.perf_counter()
        subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=None if env is None else dict(env), check=True)
        return time.perf_counter() - started

    once()
    return LatencySummary.of([once() for _ in range(runs)])


@dataclass(frozen=True)
class VethFloor:
    add: LatencySummary  # the veth created with its peer born in the other namespace
    add_del: LatencySummary  # ... and deleted again (the delete waits for the kernel's RCU grace)


def veth_floor(host_netns: str, pod_netns: str, ifname: str, runs: int) -> VethFloor:
    """The netlink work one pod setup cannot avoid: a veth ``ifname`` in ``host_netns`` whose peer is
    created directly in ``pod_netns`` (as vpccni.net.pod does), through one open handle; then deleted.

    One untimed round first. Both namespaces must exist and be the caller's own; nothing else is touched."""
    from vpccni.net.nsutil import iproute, open_netns

    pod_fd = open_netns(pod_netns)
    adds: list[float] = []
    totals: list[float] = []
    try:
        with iproute(host_netns) as ipr:
            for round_ in range(runs + 1):
                started = time.perf_counter()
                ipr.link("add", ifname=ifname, kind="veth", state="up",
                         peer={"ifname": "eth0", "net_ns_fd": pod_fd})
                added = time.perf_counter()
                ipr.link("del", ifname=ifname)  # takes the peer along
                if round_:
                    adds.append(added - started)
                    totals.append(time.perf_counter() - started)
    finally:
        os.close(pod_fd)
    return VethFloor(LatencySummary.of(adds), LatencySummary.of(totals))
