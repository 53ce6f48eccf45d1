"""``vpccni bench churn``: what a day of pod churn costs in EC2 calls and idle addresses.

A seeded trace (:mod:`.churn_trace`: ~20 pods alive at a time, 1,000 in all by default) is replayed
against a local cloud the benchmark starts, on a real ipamd process per setting (no plumbing,
``VPCCNI_DATAPLANE=none``) driven over its socket the way the CNI plugin drives it: ADD when a pod
arrives (retried, like kubelet, while the pool has no address), DEL when it leaves. Three settings see the
same trace, each labelled with what it is: ipamd's defaults (WARM_ENI_TARGET=1), ipamd with aws-node's
exact shrink (``VPCCNI_SHRINK=aws``: the current count and aws's ENI-freeing gate, the baseline) and
WARM_IP_TARGET=2.

Printed per setting: EC2 calls by action as the local EC2 endpoint counted them (ipamd's start included),
mutating calls per 1,000 pods (goal with defaults: <= 20), throttled calls, idle (free) addresses over
time (mean and max of samples of ipamd's /v1/pool), ADDs that found no address, and pods that never got
one (given up after 10 cluster minutes) or met another error: a run with any of those never "meets" the
goal. The trace runs on a
compressed clock (``--scale``, default 100 cluster seconds per wall second) and ipamd's timers are
compressed with it, and so are the refill rates of ipamd's API budget and of the cloud's throttling
buckets (:class:`.churn_trace.TimeScale` says what is and is not scaled; so does the output).
``--json`` prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from vpccni.benchmarks.churn_trace import PodLife, TimeScale, churn_trace, peak_concurrency
from vpccni.benchmarks.stats import machine_load
from vpccni.console import fail
from vpccni.testing.ipamd_process import IpamdPaths, IpamdProcess, ipamd_env
from vpccni.testing.scratch_netns import LABEL, scratch_netns
from vpccni.wire.client import IpamdUnreachable, call, call_async
from vpccni.wire.introspection import http_get, introspect
from vpccni.wire.protocol import ErrorKind, Op, Request

GOAL_MUTATING_PER_1000 = 20.0
# Each run is ipamd with these variables; the label says which, truthfully: the baseline is ipamd with
# aws-node's exact shrink rule (VPCCNI_SHRINK=aws), not aws-node itself.
SCENARIOS: tuple[tuple[str, dict[str, str]], ...] = (
    ("vpccni defaults", {}),
    ("aws-node's shrink (VPCCNI_SHRINK=aws)", {"VPCCNI_SHRINK": "aws"}),
    ("WARM_IP_TARGET=2", {"WARM_IP_TARGET": "2"}),
)
GIVE_UP_CLUSTER_S = 600.0  # a pod still without an address this long after it arrived failed for good
NETWORK = "churn"
NETNS = LABEL  # the pods' namespace: one empty scratch namespace, passed open (ipamd plumbs nothing)
ADD_RETRY_CLUSTER_S = 2.0  # kubelet retries a failed sandbox after about this long
SAMPLE_EVERY_WALL_S = 0.1
_NON_MUTATING = ("Describe", "Get", "List", "Search")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--seed", type=int, default=1, help="seed of the pod trace (default 1)")
    parser.add_argument("--pods", type=int, default=1000, help="pods in the trace (default 1000)")
    parser.add_argument("--concurrency", type=float, default=20.0, help="mean pods alive (default 20)")
    parser.add_argument(
        "--lifetime", type=float, default=120.0, help="mean pod lifetime, cluster seconds (default 120)"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=100.0,
        help="cluster seconds per wall second; ipamd's timers scale with it (default 100)",
    )
    parser.add_argument("--instance-type", default="m5.xlarge", help="node instance type (default m5.xlarge)")
    parser.add_argument("--keep-journal", metavar="FILE",
                        help="write the defaults run's churn journal here (for vpccni tune --journal)")


@dataclass
class Tally:
    attempts: int = 0
    no_ip: int = 0
    pods_waited: int = 0
    max_wait_s: float = 0.0  # cluster seconds from arrival to address (or to giving up)
    failed_for_good: int = 0  # pods that never got an address (given up after GIVE_UP_CLUSTER_S)
    dels: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    free_samples: list[int] = field(default_factory=list)
    in_use_samples: list[int] = field(default_factory=list)


async def _pod(pod: PodLife, socket_path: str, scale: TimeScale, start: float, tally: Tally,
               netns_fd: int) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(start + scale.wall(pod.arrive_s) - loop.time(), 0.0))
    add = Request(op=Op.ADD, network=NETWORK, container_id=pod.name, ifname="eth0", netns=NETNS)
    first = True
    while True:
        tally.attempts += 1
        answer = await call_async(socket_path, add, netns_fd)
        if answer.ok:
            break
        kind = str(answer.error.kind) if answer.error else "unknown"
        if answer.error is not None and answer.error.kind is ErrorKind.NO_IP:
            tally.no_ip += 1
        else:
            tally.errors[kind] = tally.errors.get(kind, 0) + 1
        if first:
            tally.pods_waited += 1
            first = False
        if (loop.time() - start) * scale.factor - pod.arrive_s > GIVE_UP_CLUSTER_S:
            tally.failed_for_good += 1
            tally.max_wait_s = max(tally.max_wait_s, (loop.time() - start) * scale.factor - pod.arrive_s)
            return
        await asyncio.sleep(scale.wall(ADD_RETRY_CLUSTER_S))
    waited = (loop.time() - start) * scale.factor - pod.arrive_s
    tally.max_wait_s = max(tally.max_wait_s, waited)
    await asyncio.sleep(max(start + scale.wall(pod.depart_s) - loop.time(), 0.0))
    answer = await call_async(
        socket_path,
        Request(op=Op.DEL, network=NETWORK, container_id=pod.name, ifname="eth0", reason="PodDeleted"),
    )
    tally.dels += 1
    if not answer.ok:
        tally.errors["del"] = tally.errors.get("del", 0) + 1


async def _sample(introspection: str, tally: Tally, done: asyncio.Event) -> None:
    while not done.is_set():
        try:
            totals = (await asyncio.to_thread(introspect, introspection, "/v1/pool"))["totals"]
            tally.free_samples.append(int(totals["free"]))
            tally.in_use_samples.append(int(totals["assigned"]) + int(totals["cooling"]))
        except IpamdUnreachable:
            pass
        await asyncio.sleep(SAMPLE_EVERY_WALL_S)


async def _replay(paths: IpamdPaths, trace: list[PodLife], scale: TimeScale) -> Tally:
    tally = Tally()
    done = asyncio.Event()
    sampler = asyncio.create_task(_sample(paths.introspection, tally, done))
    start = asyncio.get_running_loop().time()
    with scratch_netns() as netns_fd:
        await asyncio.gather(*(_pod(pod, paths.socket, scale, start, tally, netns_fd) for pod in trace))
    done.set()
    await sampler
    return tally


def _wait_pool_ready(paths: IpamdPaths, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not call(paths.socket, Request(op=Op.STATUS)).ok:
        if time.monotonic() > deadline:
            raise TimeoutError("ipamd's pool never had a free address")
        time.sleep(0.05)


def scenario(
    cloud: Any,
    trace: list[PodLife],
    scale: TimeScale,
    instance_type: str,
    name: str,
    settings: dict[str, str],
    *,
    keep_journal: bool = False,
) -> dict[str, Any]:
    """One setting's run of the trace on a fresh node; ``keep_journal``: the result carries ipamd's churn
    journal (``/v1/journal``, read before ipamd stops) under ``journal``, for ``vpccni tune``."""
    node = cloud.add_node(instance_type)
    with tempfile.TemporaryDirectory(prefix="vpccni-churn-") as workdir:
        paths = IpamdPaths(workdir)
        env = ipamd_env(
            ec2_endpoint=cloud.ec2_endpoint,
            region=cloud.region,
            imds_endpoint=node.imds_endpoint,
            paths=paths,
            settings={**timers_for(scale, settings), **scale.ipamd_rates(), **settings},
        )
        cloud.server.reset_counters()
        process = IpamdProcess(env, paths).start()
        try:
            process.wait_ready()
            _wait_pool_ready(paths)
            began = time.monotonic()
            tally = asyncio.run(_replay(paths, trace, scale))
            wall = time.monotonic() - began
            counters = {action: c.to_json() for action, c in sorted(cloud.server.counters().items())}
            journal = _journal(paths) if keep_journal else None
        finally:
            process.terminate()
    result = _result(name, settings, trace, counters, tally, wall)
    if journal is not None:
        result["journal"] = journal
    return result


def timers_for(scale: TimeScale, settings: dict[str, str]) -> dict[str, str]:
    """ipamd's timers on the run's clock; aws-node's shrink has no scale-down window (ipamd refuses one)."""
    timers = scale.ipamd_timers()
    if settings.get("VPCCNI_SHRINK") == "aws":
        del timers["VPCCNI_SCALE_DOWN_WINDOW"]
    return timers


def _journal(paths: IpamdPaths) -> str:
    time.sleep(3.0)  # ipamd flushes its journal every 2 s (wall): wait for the last events
    status, body = http_get(paths.introspection, "/v1/journal")
    if status != 200:
        raise RuntimeError(f"/v1/journal answered HTTP {status}")
    return body.decode()


def _stats(samples: list[int]) -> dict[str, float]:
    return {
        "mean": round(sum(samples) / len(samples), 2) if samples else 0.0,
        "max": max(samples, default=0),
        "samples": len(samples),
    }


def _result(
    name: str,
    settings: dict[str, str],
    trace: list[PodLife],
    counters: dict[str, dict[str, int]],
    tally: Tally,
    wall: float,
) -> dict[str, Any]:
    mutating = sum(c["calls"] for action, c in counters.items() if not action.startswith(_NON_MUTATING))
    return {
        "name": name,
        "settings": settings,
        "ec2_calls": counters,
        "calls_total": sum(c["calls"] for c in counters.values()),
        "mutating_calls": mutating,
        "mutating_per_1000_pods": round(mutating * 1000 / len(trace), 2),
        "throttled_calls": sum(c["throttled"] for c in counters.values()),
        "idle_addresses": _stats(tally.free_samples),
        "in_use_addresses": _stats(tally.in_use_samples),
        "adds": {
            "pods": len(trace),
            "attempts": tally.attempts,
            "no_ip": tally.no_ip,
            "pods_waited": tally.pods_waited,
            "max_wait_cluster_s": round(tally.max_wait_s, 1),
            "failed_for_good": tally.failed_for_good,
            "errors": tally.errors,
        },
        "dels": tally.dels,
        "wall_seconds": round(wall, 2),
    }


def goal(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict on the defaults' run. A run with a failed operation (a pod never addressed, an ADD or
    DEL error) shows nothing about what it measures: the goal is never met then."""
    failures = [run["name"] for run in runs
                if run["adds"]["failed_for_good"] or run["adds"]["errors"]]
    return {
        "mutating_per_1000_pods_with_defaults": GOAL_MUTATING_PER_1000,
        "met": runs[0]["mutating_per_1000_pods"] <= GOAL_MUTATING_PER_1000 and not failures,
        "runs_with_failures": failures,
    }


def scaled_throttling(scale: TimeScale) -> Any:
    """AWS's per-account EC2 buckets with their refill rates on the trace's clock."""
    from vpccni.localcloud import BucketSpec, ThrottleConfig

    return ThrottleConfig(
        buckets={
            name: BucketSpec(spec.capacity, spec.refill_per_s * scale.factor)
            for name, spec in ThrottleConfig().buckets.items()
        }
    )


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from vpccni.localcloud import LocalCloud

    trace = churn_trace(args.seed, args.pods, args.concurrency, args.lifetime)
    scale = TimeScale(args.scale)
    with LocalCloud(profile="fast", seed=args.seed, throttle=scaled_throttling(scale)) as cloud:
        runs = [
            scenario(cloud, trace, scale, args.instance_type, name, settings,
                     keep_journal=bool(args.keep_journal) and n == 0)
            for n, (name, settings) in enumerate(SCENARIOS)
        ]
    if args.keep_journal:
        with open(args.keep_journal, "w", encoding="utf-8") as out:
            out.write(str(runs[0].pop("journal")))

    cloud_refill = {name: spec.refill_per_s for name, spec in scaled_throttling(scale).buckets.items()}
    return {
        "benchmark": "churn",
        "seed": args.seed,
        "pods": args.pods,
        "concurrency": {"mean": args.concurrency, "peak": peak_concurrency(trace)},
        "mean_lifetime_cluster_s": args.lifetime,
        "trace_cluster_s": round(trace[-1].depart_s, 1),
        "instance_type": args.instance_type,
        "time_scale": {
            "cluster_s_per_wall_s": args.scale,
            "ipamd_timers": scale.ipamd_timers(),
            "ipamd_budget_refill": scale.ipamd_rates(),
            "cloud_refill_per_s": cloud_refill,
            "not_scaled": "burst sizes, the budget's AIMD recovery interval, the 1 s IMDS check floor",
        },
        "runs": runs,
        "goal": goal(runs),
        "machine": machine_load(),
    }


def _print_text(r: dict[str, Any]) -> None:
    runs = r["runs"]
    actions = sorted({a for run in runs for a in run["ec2_calls"]})
    width = 2 + max(22, *(len(run["name"]) for run in runs))

    def row(label: str, values: list[str]) -> str:
        return f"  {label:<34}" + "".join(f"{v:>{width}}" for v in values)

    ts = r["time_scale"]
    lines = [
        f"vpccni bench churn: {r['pods']} pods, ~{r['concurrency']['mean']:g} alive (peak "
        f"{r['concurrency']['peak']}), mean life {r['mean_lifetime_cluster_s']:g} s, seed {r['seed']}, "
        f"{r['instance_type']}",
        f"  clock: {ts['cluster_s_per_wall_s']:g} cluster seconds per wall second "
        f"({r['trace_cluster_s']:.0f} cluster s); ipamd's timers, its API budget refill and the cloud's "
        f"throttling refill scaled with it; not scaled: {ts['not_scaled']}",
        row("", [run["name"] for run in runs]),
    ]
    lines += [
        row(f"EC2 {action}", [str(run["ec2_calls"].get(action, {}).get("calls", 0)) for run in runs])
        for action in actions
    ]
    lines += [
        row("mutating calls", [str(run["mutating_calls"]) for run in runs]),
        row("mutating calls per 1,000 pods", [f"{run['mutating_per_1000_pods']:g}" for run in runs]),
        row("throttled calls", [str(run["throttled_calls"]) for run in runs]),
        row(
            "idle addresses mean / max",
            [f"{run['idle_addresses']['mean']:g} / {run['idle_addresses']['max']}" for run in runs],
        ),
        row(
            "ADDs that found no IP (pods)",
            [f"{run['adds']['no_ip']} ({run['adds']['pods_waited']})" for run in runs],
        ),
        row("pods never addressed / other errors", [
            f"{run['adds']['failed_for_good']} / {sum(run['adds']['errors'].values())}" for run in runs]),
        row("wall seconds", [f"{run['wall_seconds']:g}" for run in runs]),
        f"  goal: <= {r['goal']['mutating_per_1000_pods_with_defaults']:g} mutating calls per 1,000 pods "
        f"with defaults, no failed operation: {'met' if r['goal']['met'] else 'NOT met'}"
        + (f" (failures in: {', '.join(r['goal']['runs_with_failures'])})"
           if r["goal"]["runs_with_failures"] else ""),
        f"  machine: load {r['machine']['load_1m']} on {r['machine']['cpus']:.0f} CPUs",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def run(args: argparse.Namespace) -> int:
    prog = "vpccni bench churn"
    if not 1 <= args.pods <= 100_000:
        return fail(prog, f"--pods {args.pods}: expected 1-100000")
    if not 0 < args.concurrency <= 1000:
        return fail(prog, f"--concurrency {args.concurrency}: expected more than 0 and at most 1000")
    if not 10 < args.lifetime <= 86400:
        return fail(prog, f"--lifetime {args.lifetime}: expected more than 10 and at most 86400 seconds")
    if not 1 <= args.scale <= 1000:
        return fail(prog, f"--scale {args.scale}: expected 1-1000")
    from vpccni.localcloud import is_known_instance_type

    if not is_known_instance_type(args.instance_type):
        return fail(prog, f"--instance-type {args.instance_type!r}: not a known instance type")
    report = measure(args)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        _print_text(report)
    return 0
