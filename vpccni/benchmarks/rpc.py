"""``vpccni bench rpc``: durable ADD+DEL RPCs per second and latency over the ipamd socket.

A real ipamd server runs in a child process (``python -m ipamd.app.benchserve``: the production server,
datastore and group-committed checkpoint with fsync; a fake ENI; no plumbing); this process drives it with
``--concurrency`` clients, each on its own connection, each doing ADD then DEL for a fresh key, one
request/response per RPC. Every answer was durable before it was sent.

Printed next to the figure: the fsync floor measured in the same directory in the same run (one small
write + fsync per operation) and their ratio, the number of RPCs per checkpoint write (what group commit
saves), and the machine's load (figures from a shared machine are noisy). Goal on a 2-core machine:
>= 3,000 RPCs/s and p99 <= 5 ms. An error reply is counted as an error, not as an RPC served (it is
neither in RPCs/s nor in the latencies), and any error means the goal is not met.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any

from vpccni.benchmarks.floors import Floor, fsync_floor
from vpccni.benchmarks.stats import LatencySummary, machine_load
from vpccni.console import fail
from vpccni.testing.scratch_netns import LABEL, scratch_netns
from vpccni.wire.client import AsyncConnection
from vpccni.wire.protocol import Op, Request

GOAL_RPCS_PER_S = 3000.0
GOAL_P99_MS = 5.0
READY_TIMEOUT_S = 30.0
WARMUP_PAIRS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured duration (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--dir", default=None, help="directory for the socket, checkpoint and fsync floor "
                        "(default: a new temporary directory)")


@dataclass
class _ClientTally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


async def _rpc(conn: AsyncConnection, req: Request, netns_fd: int | None, tally: _ClientTally | None) -> None:
    started = time.perf_counter()
    response = await conn.request(req, netns_fd)
    elapsed = time.perf_counter() - started
    if tally is None:
        return
    if response.ok:
        tally.latencies.append(elapsed)
    else:  # an error reply is no RPC served: it counts as an error, never as a fast RPC
        kind = str(response.error.kind) if response.error else "unknown"
        tally.errors[kind] = tally.errors.get(kind, 0) + 1


async def _client(index: int, socket_path: str, start: asyncio.Event, ready: list[int],
                  stop_at: list[float], tally: _ClientTally, netns_fd: int) -> None:
    conn = await AsyncConnection.open(socket_path)
    try:
        n = 0
        for counting in (False, True):
            if counting:
                ready.append(index)
                await start.wait()
            while (n < WARMUP_PAIRS) if not counting else (time.perf_counter() < stop_at[0]):
                cid = f"bench{index:04d}n{n}"
                add = Request(op=Op.ADD, network="bench", container_id=cid, ifname="eth0",
                              netns=LABEL, deadline_ms=10_000)
                await _rpc(conn, add, netns_fd, tally if counting else None)
                delete = Request(op=Op.DEL, network="bench", container_id=cid, ifname="eth0",
                                 reason="PodDeleted", deadline_ms=10_000)
                await _rpc(conn, delete, None, tally if counting else None)
                n += 1
    finally:
        conn.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc); 0.0 where unavailable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(socket_path: str, concurrency: int, seconds: float, netns_fd: int,
                 server_pid: int = 0) -> tuple[_ClientTally, float, dict[str, float]]:
    start = asyncio.Event()
    ready: list[int] = []
    stop_at = [float("inf")]
    tallies = [_ClientTally() for _ in range(concurrency)]
    tasks = [asyncio.create_task(_client(i, socket_path, start, ready, stop_at, tallies[i], netns_fd))
             for i in range(concurrency)]
    while len(ready) < concurrency:
        done = [t for t in tasks if t.done()]
        if done:
            await done[0]  # a client failed while warming up: surface its error
        await asyncio.sleep(0.01)
    cpu_before = (_cpu_seconds(server_pid), _cpu_seconds(os.getpid()))
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    cpu = {"server": _cpu_seconds(server_pid) - cpu_before[0],
           "client": _cpu_seconds(os.getpid()) - cpu_before[1]}
    total = _ClientTally()
    for t in tallies:
        total.latencies += t.latencies
        for kind, count in t.errors.items():
            total.errors[kind] = total.errors.get(kind, 0) + count
    return total, elapsed, cpu


def _read_event(stream: IO[str], expected: str) -> dict[str, Any]:
    line = stream.readline()
    try:
        event = json.loads(line)
    except ValueError:
        event = None
    if not isinstance(event, dict) or event.get("event") != expected:
        raise RuntimeError(f"ipamd.app.benchserve: expected a {expected!r} line, got {line.strip()!r}")
    return event


def _start_server(workdir: str, addresses: int) -> tuple[subprocess.Popen[str], str]:
    socket_path = os.path.join(workdir, "run", "ipamd.sock")
    cmd = [sys.executable, "-m", "ipamd.app.benchserve", "--socket", socket_path,
           "--state", os.path.join(workdir, "ipam.json"), "--addresses", str(addresses)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    return proc, socket_path


def _measure(workdir: str, concurrency: int, seconds: float) -> dict[str, Any]:
    floor = fsync_floor(workdir, seconds=min(1.0, max(0.2, seconds / 3)))
    proc, socket_path = _start_server(workdir, addresses=max(64, 4 * concurrency))
    stopped: dict[str, Any] = {}
    try:
        assert proc.stdout is not None
        ready = _read_event(proc.stdout, "ready")
        with scratch_netns() as netns_fd:  # the pods' namespace, passed with every ADD (nothing is plumbed)
            tally, elapsed, cpu = asyncio.run(_drive(socket_path, concurrency, seconds, netns_fd,
                                                     int(ready["pid"])))
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=READY_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        for line in out.splitlines():
            if '"stopped"' in line:
                stopped = json.loads(line)
    return _report(concurrency, tally, elapsed, floor, stopped, cpu)


def _report(concurrency: int, tally: _ClientTally, elapsed: float, floor: Floor,
            stopped: dict[str, Any], cpu: dict[str, float]) -> dict[str, Any]:
    latency = LatencySummary.of(tally.latencies)
    rpcs_per_s = latency.count / elapsed if elapsed > 0 else 0.0
    writes = int(stopped.get("writes", 0))
    server_rpcs = int(stopped.get("adds", 0)) + int(stopped.get("dels", 0))
    return {
        "benchmark": "rpc",
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "rpcs": latency.count,
        "errors": tally.errors,
        "rpcs_per_s": round(rpcs_per_s, 1),
        "latency_ms": latency.as_ms(),
        "fsync_floor": {"ops_per_s": round(floor.ops_per_s, 1), "latency_ms": floor.latency.as_ms()},
        "ratio_to_fsync_floor": round(rpcs_per_s / floor.ops_per_s, 3) if floor.ops_per_s else 0.0,
        "server": {"checkpoint_writes": writes, "commits": int(stopped.get("commits", 0)),
                   "rpcs_per_write": round(server_rpcs / writes, 2) if writes else 0.0},
        # CPU per RPC is steadier than RPCs/s on a shared machine: it does not count time spent waiting.
        "cpu_us_per_rpc": {side: round(seconds * 1e6 / latency.count, 1) if latency.count else 0.0
                           for side, seconds in cpu.items()},
        # Never met with an error reply: a bench that fails requests has not shown what it measures.
        "goal": {"rpcs_per_s": GOAL_RPCS_PER_S, "p99_ms": GOAL_P99_MS,
                 "met": rpcs_per_s >= GOAL_RPCS_PER_S and latency.p99_s * 1000 <= GOAL_P99_MS
                 and not tally.errors},
        "machine": machine_load(),
    }


def _print_text(r: dict[str, Any]) -> None:
    lat, floor = r["latency_ms"], r["fsync_floor"]
    errors = sum(r["errors"].values())
    lines = [
        f"vpccni bench rpc: {r['concurrency']} clients for {r['seconds']:.1f} s, durable ADD+DEL pairs",
        f"  rpc          {r['rpcs_per_s']:>9.0f} RPCs/s  p50 {lat['p50']:.3f} ms  p99 {lat['p99']:.3f} ms  "
        f"({r['rpcs']} RPCs served, {errors} error replies not counted)",
        f"  fsync floor  {floor['ops_per_s']:>9.0f} ops/s   p50 {floor['latency_ms']['p50']:.3f} ms  "
        f"p99 {floor['latency_ms']['p99']:.3f} ms  (same directory, this run)",
        f"  ratio        {r['ratio_to_fsync_floor']:.2f} x the fsync floor; "
        f"{r['server']['rpcs_per_write']:.1f} RPCs per checkpoint write (group commit)",
        f"  cpu          {r['cpu_us_per_rpc']['server']:.0f} us per RPC in ipamd, "
        f"{r['cpu_us_per_rpc']['client']:.0f} us in the clients",
        f"  goal         >= {r['goal']['rpcs_per_s']:.0f} RPCs/s and p99 <= {r['goal']['p99_ms']:g} ms, "
        f"no error: {'met' if r['goal']['met'] else 'not met'}",
        f"  machine      load {r['machine']['load_1m']} on {r['machine']['cpus']:.0f} CPUs "
        f"(a shared machine makes these figures noisy)",
    ]
    if errors:
        lines.append(f"  errors       {r['errors']}")
    sys.stdout.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    prog = "vpccni bench rpc"
    if not 0 < args.seconds <= 3600:
        return fail(prog, f"--seconds {args.seconds}: expected more than 0 and at most 3600")
    if not 1 <= args.concurrency <= 1024:
        return fail(prog, f"--concurrency {args.concurrency}: expected 1-1024")
    if args.dir is not None and not os.path.isdir(args.dir):
        return fail(prog, f"--dir {args.dir!r}: not a directory")
    with tempfile.TemporaryDirectory(prefix="vpccni-bench-rpc-", dir=args.dir) as workdir:
        report = _measure(workdir, args.concurrency, args.seconds)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        _print_text(report)
    return 0
