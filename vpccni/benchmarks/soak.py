"""``vpccni bench soak``: pods come and go on one node for a long time while ipamd crashes and EC2 misbehaves;
at the end nothing may be leaked, held twice or left behind.

One emulated node (:class:`~vpccni.testing.cluster.EmulatedCluster`: the real ipamd with the Linux
dataplane in the node's namespace, the installed plugin, pods in network namespaces, the local cloud)
runs ``--loops`` concurrent pod loops (:class:`~vpccni.benchmarks.soak_chaos.PodLoop`: ADD, hold, DEL,
as a runtime drives one pod slot) for ``--duration`` seconds. Meanwhile ipamd is SIGKILLed at random
moments (mean interval ``--kill-every``) and restarted after a pause of up to 2 s, and EC2 faults are
switched on for 3-10 s at random moments (mean interval ``--faults-every``) through the local cloud's
control plane: throttling, 5xx, calls that hang past HTTP_TIMEOUT, failing attaches. The leaked-ENI
sweep runs with short timers, as it must clean what a crash between create and attach leaves.

Then the audit (:mod:`~vpccni.benchmarks.soak_audit`) with the pods that were up when the time ran out,
and again after they are all deleted: the pods, ipamd, its checkpoint, EC2 and the node's namespace must
agree, so 0 leaked, 0 doubly held, 0 stray links/routes/rules. Exit status 1 if either audit is not clean.

Every exec is counted (:class:`~vpccni.benchmarks.soak_chaos.Outcomes`), failures by code and message.
The floor, measured in the same run before the chaos: the same loops on the same node for
``--floor-seconds`` without kills or faults (latency of an ADD and a DEL, pod cycles per second).

    vpccni bench soak --loops 100 --duration 600          # the long run
    vpccni bench soak --loops 8 --duration 45 --json      # what CI runs (tests/bench/test_bench_soak.py)

Needs root (network namespaces); everything is created under ``sk<4 hex>-*`` and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from vpccni.benchmarks.harness_run import run_cleanly
from vpccni.benchmarks.soak_audit import Audit, audit_until_clean
from vpccni.benchmarks.soak_chaos import (
    FAULTS,
    FINAL_ADD_S,
    FaultSwitch,
    IpamdKiller,
    Outcomes,
    Plugin,
    Pod,
    PodLoop,
)
from vpccni.benchmarks.stats import LatencySummary, machine_load
from vpccni.config import limits
from vpccni.console import fail

if TYPE_CHECKING:
    from vpccni.testing.cluster import ClusterNode, EmulatedCluster

DEFAULT_INSTANCE_TYPE = "m5.4xlarge"  # 234 pods: 100 loops never wait for the node's limits alone
DEL_GRACE_S = 120.0  # a DEL that has not succeeded after this long is reported as never done
AUDIT_TIMEOUT_S = 90.0
SETTINGS = {
    # A small warm target: the pool grows and shrinks with the pods, so EC2 is called (and faulted) often.
    "WARM_IP_TARGET": "2",
    # The sweep must run during a soak: a SIGKILL between create and attach leaves a detached ENI.
    "DISABLE_LEAKED_ENI_CLEANUP": "false",
    "VPCCNI_LEAKED_ENI_GC_INTERVAL": "5",
    "VPCCNI_LEAKED_ENI_GC_GRACE": "5",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--loops", type=int, default=20, metavar="N",
                        help="concurrent pod loops (default 20)")
    parser.add_argument("--duration", type=float, default=120.0, metavar="S",
                        help="seconds of chaos (default 120)")
    parser.add_argument("--floor-seconds", type=float, default=10.0, metavar="S",
                        help="seconds of the same loops without chaos first, the floor (default 10)")
    parser.add_argument("--kill-every", type=float, default=20.0, metavar="S",
                        help="mean seconds between ipamd SIGKILLs; 0: never (default 20)")
    parser.add_argument("--faults-every", type=float, default=15.0, metavar="S",
                        help="mean seconds between EC2 fault windows; 0: never (default 15)")
    parser.add_argument("--instance-type", default=DEFAULT_INSTANCE_TYPE,
                        help=f"the node's instance type (default {DEFAULT_INSTANCE_TYPE})")
    parser.add_argument("--seed", type=int, default=1, help="seeds every random choice (default 1)")


def run(args: argparse.Namespace) -> int:
    prog = "vpccni bench soak"
    if not 1 <= args.loops <= 500:
        return fail(prog, f"--loops {args.loops}: expected 1-500")
    if not 1 <= args.duration <= 86_400 or not 0 <= args.floor_seconds <= 3600:
        return fail(prog, "--duration: expected 1-86400 s; --floor-seconds: 0-3600 s")
    if args.kill_every < 0 or args.faults_every < 0:
        return fail(prog, "--kill-every and --faults-every: seconds >= 0 (0: never)")
    if limits.lookup(args.instance_type) is None:
        return fail(prog, f"--instance-type {args.instance_type!r}: not in DescribeInstanceTypes")
    if os.geteuid() != 0:
        return fail(prog, "needs root: it creates network namespaces and runs ipamd in one")
    report = run_cleanly(prog, lambda: soak(args))
    if isinstance(report, int):
        return report
    sys.stdout.write(json.dumps(report) + "\n" if args.json else text(report) + "\n")
    return 0 if report["clean"] else 1


class Phase:
    """The loops for a while, with or without chaos: what they did, and the pods up when it ended."""

    def __init__(self, cluster: EmulatedCluster, node: ClusterNode, args: argparse.Namespace,
                 seconds: float, chaos: bool) -> None:
        self.outcomes = Outcomes()
        self.plugin = Plugin(cluster, node, self.outcomes)
        self.up: list[Pod] = []
        self.undeleted: list[str] = []
        stop = threading.Event()
        loops = [PodLoop(i, self.plugin, stop, args.seed * 1000 + i, DEL_GRACE_S, self.up, self.undeleted)
                 for i in range(args.loops)]
        self.killer = IpamdKiller(cluster, node, stop, args.kill_every, args.seed) \
            if chaos and args.kill_every else None
        self.faults = FaultSwitch(cluster.cloud.ec2_endpoint, stop, args.faults_every, args.seed + 1) \
            if chaos and args.faults_every else None
        helpers = [t for t in (self.killer, self.faults) if t is not None]
        started = time.monotonic()
        for thread in (*loops, *helpers):
            thread.start()
        try:
            stop.wait(seconds)
        finally:
            stop.set()
            for thread in (*helpers, *loops):  # ipamd is back and EC2 healthy before the loops drain
                thread.join()
        self.seconds = time.monotonic() - started
        self.cycles = sum(loop.cycles for loop in loops)
        self.without_pod = sum(loop.ended_without_pod for loop in loops)

    def report(self) -> dict[str, Any]:
        o = self.outcomes
        out: dict[str, Any] = {"seconds": round(self.seconds, 1), "pod_cycles": self.cycles,
                               "pod_cycles_per_s": round(self.cycles / self.seconds, 2),
                               "pods_up_at_end": len(self.up), "loops_ended_without_pod": self.without_pod,
                               "dels_never_done": self.undeleted,
                               "harness_errors": dict(o.harness_errors)}
        for command in ("ADD", "DEL"):
            counts = o.counts[command]
            out[command] = {"execs": sum(counts.values()), "ok": counts["ok"],
                            "failed": sum(n for k, n in counts.items() if k != "ok"),
                            "outcomes": dict(counts.most_common()),
                            "ok_latency_ms": LatencySummary.of(o.ok_seconds[command]).as_ms()}
        if self.killer is not None:
            out["ipamd_kills"] = self.killer.kills
        if self.faults is not None:
            out["ec2_fault_windows"] = dict(self.faults.windows)
            out["ec2_requests_faulted"] = dict(self.faults.fired)
        return out


def soak(args: argparse.Namespace) -> dict[str, Any]:
    from vpccni.testing.cluster import EmulatedCluster

    prefix = "sk" + secrets.token_hex(2)
    with EmulatedCluster([], prefix=prefix, settings=SETTINGS) as cluster:
        node = cluster.add_node(args.instance_type)
        floor = Phase(cluster, node, args, args.floor_seconds, chaos=False) if args.floor_seconds else None
        if floor is not None:
            delete_all(floor.plugin, floor.up)
        chaos = Phase(cluster, node, args, args.duration, chaos=True)
        figures, calls = chaos.report(), cluster_calls(cluster)
        after = Plugin(cluster, node, Outcomes())  # the audit's CHECKs and the final DELs, counted apart
        node.wait_serving(60.0)
        with_pods = audit_until_clean(cluster, node, chaos.up, prefix, after, AUDIT_TIMEOUT_S)
        final_dels = delete_all(after, chaos.up)
        empty = audit_until_clean(cluster, node, [], prefix, after, AUDIT_TIMEOUT_S)
        return report(args, floor, chaos, figures, with_pods, empty, final_dels, calls)


def delete_all(plugin: Plugin, pods: list[Pod]) -> dict[str, int]:
    """DEL every pod that is up (each until it succeeds); how many DEL execs that took, and how many never
    succeeded."""
    before = sum(plugin.outcomes.counts["DEL"].values())
    never = 0
    for pod in pods:
        if plugin.delete(pod.netns, pod.container_id, pod.name, pod.result, time.monotonic() + DEL_GRACE_S):
            pod.netns.remove()
        else:
            never += 1
    return {"pods": len(pods), "execs": sum(plugin.outcomes.counts["DEL"].values()) - before,
            "never_done": never}


def cluster_calls(cluster: EmulatedCluster) -> dict[str, int]:
    """EC2 requests the node made, as the local EC2 counts them (faulted ones included)."""
    from vpccni.localcloud.ec2.control import Ec2ControlClient

    counters = Ec2ControlClient(cluster.cloud.ec2_endpoint).counters()
    return {"calls": sum(c.calls for c in counters.values()),
            "errors": sum(c.errors for c in counters.values()),
            "throttled": sum(c.throttled for c in counters.values())}


def report(args: argparse.Namespace, floor: Phase | None, chaos: Phase, figures: dict[str, Any],
           with_pods: Audit, empty: Audit, final_dels: dict[str, int],
           calls: dict[str, int]) -> dict[str, Any]:
    clean = with_pods.problems == 0 and empty.problems == 0 and not chaos.undeleted \
        and final_dels["never_done"] == 0 and chaos.without_pod == 0
    return {
        "benchmark": "soak",
        "node": args.instance_type,
        "loops": args.loops,
        "seed": args.seed,
        "kill_every_s": args.kill_every,
        "faults_every_s": args.faults_every,
        "faults": [name for name, _ in FAULTS],
        "floor": floor.report() if floor is not None else None,
        "soak": figures,
        "ec2_requests": calls,
        "audit_with_pods_up": with_pods.to_json(),
        "final_dels": final_dels,
        "audit_after_all_deleted": empty.to_json(),
        "clean": clean,
        "machine": machine_load(),
    }


def text(r: dict[str, Any]) -> str:
    s, up, empty = r["soak"], r["audit_with_pods_up"], r["audit_after_all_deleted"]

    def ops(phase: dict[str, Any], command: str) -> str:
        c, lat = phase[command], phase[command]["ok_latency_ms"]
        return (f"{command} {c['execs']:6d} execs, {c['ok']:6d} ok, {c['failed']:5d} failed; ok p50 "
                f"{lat['p50']:7.1f} ms p99 {lat['p99']:7.1f} ms max {lat['max']:7.1f} ms")

    lines = [f"vpccni bench soak: {r['loops']} pod loops on one {r['node']} for {s['seconds']:.0f} s, ipamd "
             f"SIGKILLed every ~{r['kill_every_s']:g} s, EC2 faults every ~{r['faults_every_s']:g} s "
             f"(seed {r['seed']})"]
    if r["floor"] is not None:
        f = r["floor"]
        lines += [f"  floor (same loops, no chaos, {f['seconds']:.0f} s): {f['pod_cycles_per_s']:.1f} pod "
                  "cycles/s", f"    {ops(f, 'ADD')}", f"    {ops(f, 'DEL')}"]
    lines += [f"  soak: {s['pod_cycles']} pod cycles, {s['pod_cycles_per_s']:.1f}/s; "
              f"{s.get('ipamd_kills', 0)} ipamd kills; EC2 fault windows {s.get('ec2_fault_windows', {})}, "
              f"requests faulted {s.get('ec2_requests_faulted', {})}; EC2 requests {r['ec2_requests']}",
              f"    {ops(s, 'ADD')}", f"    {ops(s, 'DEL')}"]
    for command in ("ADD", "DEL"):
        for outcome, count in s[command]["outcomes"].items():
            if outcome != "ok":
                lines.append(f"      {command} {count:5d} x {outcome}")
    if s["harness_errors"]:
        lines.append(f"    harness errors (not the plugin's): {s['harness_errors']}")
    for title, a in (("with the pods up", up), ("after every pod was deleted", empty)):
        lines.append(f"  audit {title} ({a['pods_up']} pods, converged in {a['seconds_to_converge']:.0f} s): "
                     f"{len(a['leaked'])} leaked, {len(a['doubly_held'])} doubly held, "
                     f"{len(a['lost'])} lost, "
                     f"{len(a['stray_links'])} stray links, {len(a['stray_routes'])} stray routes, "
                     f"{len(a['stray_rules'])} stray rules, {len(a['stray_namespaces'])} stray namespaces, "
                     f"{len(a['checkpoint'])} checkpoint and {len(a['ec2'])} EC2 disagreements, "
                     f"{len(a['pod_problems'])} pod problems, {a['spooled']} release records pending")
        lines += [f"    {kind}: {item}" for kind in ("leaked", "doubly_held", "lost", "stray_links",
                                                     "stray_routes", "stray_rules", "stray_namespaces",
                                                     "checkpoint", "ec2", "pod_problems")
                  for item in a[kind][:10]]
    if s["dels_never_done"] or r["final_dels"]["never_done"]:
        lines.append(f"  DELs that never succeeded: {s['dels_never_done']} + {r['final_dels']['never_done']}")
    if s["loops_ended_without_pod"]:
        lines.append(f"  loops that got no pod in {FINAL_ADD_S:.0f} s after the chaos: "
                     f"{s['loops_ended_without_pod']}")
    lines.append(f"  {'CLEAN' if r['clean'] else 'NOT CLEAN'}; machine load {r['machine']['load_1m']} on "
                 f"{r['machine']['cpus']:.0f} CPUs")
    return "\n".join(lines)
