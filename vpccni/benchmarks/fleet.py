"""``vpccni bench fleet``: a fleet of nodes boots at once against one account's EC2 budget.

``--nodes`` nodes (default 2,000) of a mix of instance types, in three zones whose subnets are sized as real
ones (zone c's node subnet runs out), start ipamd together; each node's pods (``--pods``, default 30,
capped at what its type holds) arrive over the first minute and are retried as kubelet retries a failed
sandbox until they have an address. EC2 is the local cloud's, in process, with the account-wide buckets
the EC2 API reference documents; time is virtual (:mod:`vpccni.sim`), so the fleet boots in minutes of
wall time. Each policy of :mod:`vpccni.sim.policies` meets the same fleet (one process each, ``--jobs``
at a time).

Printed per policy: time until every pod had an address, its ratio to the bound (the least time the
account's buckets allow for the calls the fleet needs, computed in the same run from the scenario), calls
and throttled calls, ADDs that waited and for how long, pods that never got an address, addresses held
idle, what the full subnet did. A PNG shows pods with addresses over time for every policy with the bound
as a line; ``--json`` prints one JSON object. The goal (``vpccni+fleet``): within 1.2x of the bound, no
pod without an address, throttled calls at most 5 % of all calls; a policy with any pod left without an
address never meets it. ``--process-checks`` also measures, on real ipamd processes against the local
cloud: cold start (ipamd start to the first pod address, ``realistic`` latency) and RSS with 110 pods.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from vpccni.benchmarks.stats import machine_load
from vpccni.console import fail

DEFAULT_PNG = "vpccni-bench-fleet.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=2000, help="nodes that boot at once (default 2000)")
    parser.add_argument("--pods", type=int, default=30, help="pods per node (default 30, capped per type)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fleet (default 1)")
    parser.add_argument("--policy", action="append", dest="policies", metavar="NAME",
                        help="a policy to run (repeatable; default: aws-like, vpccni, vpccni+fleet)")
    parser.add_argument("--deadline", type=float, default=4 * 3600.0,
                        help="virtual seconds after which a run stops (default 14400)")
    parser.add_argument("--jobs", type=int, default=2, help="policies run side by side (default 2)")
    parser.add_argument("--png", default=DEFAULT_PNG, help=f"where the picture goes (default {DEFAULT_PNG})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--process-checks", action="store_true",
                        help="also measure cold start and RSS on real ipamd processes")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def _one(name: str, nodes: int, pods: int, seed: int, deadline: float, quiet: bool) -> dict[str, Any]:
    from vpccni.sim.fleet import run_fleet
    from vpccni.sim.policies import POLICIES
    from vpccni.sim.scenario import FleetSpec
    from vpccni.sim.summary import summarize

    spec = FleetSpec(nodes=nodes, pods_per_node=pods, seed=seed)
    # ipamd's own warnings (thousands of throttles) would drown the table: this process prints figures.
    logging.getLogger().addHandler(logging.NullHandler())

    def progress(message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    run = run_fleet(spec, POLICIES[name], deadline_s=deadline, progress=None if quiet else progress)
    return summarize(run, spec)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from vpccni.sim.scenario import FleetSpec
    from vpccni.sim.summary import RATIO_GOAL, THROTTLE_GOAL_FRACTION, bounds_json, verdict

    spec = FleetSpec(nodes=args.nodes, pods_per_node=args.pods, seed=args.seed)
    names = args.policies
    context = multiprocessing.get_context("fork")  # the parent has not started the simulator: nothing to copy
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(names))), mp_context=context) as pool:
        futures = [pool.submit(_one, name, args.nodes, args.pods, args.seed, args.deadline, args.quiet)
                   for name in names]
        rows = [future.result() for future in futures]
    for row in rows:
        met, misses = verdict(row)
        row["goal"] = {"met": met, "misses": misses}
    report: dict[str, Any] = {
        "benchmark": "fleet",
        "nodes": args.nodes,
        "pods_per_node": args.pods,
        "pods": rows[0]["pods"],
        "seed": args.seed,
        "mix": [list(m) for m in spec.mix],
        "subnets": [{"name": s.name, "cidr": s.cidr, "zone": s.zone, "tagged": s.tagged,
                     "hosts_nodes": s.hosts_nodes} for s in spec.subnets],
        "bound": bounds_json(spec),
        "goal": {"ratio": RATIO_GOAL, "throttled_fraction": THROTTLE_GOAL_FRACTION,
                 "policy": "vpccni+fleet"},
        "runs": rows,
        "machine": machine_load(),
    }
    if args.process_checks:
        from vpccni.benchmarks.fleet_process import process_checks

        report["process_checks"] = process_checks()
    return report


def run(args: argparse.Namespace) -> int:
    prog = "vpccni bench fleet"
    from vpccni.sim.policies import POLICIES

    args.policies = args.policies or list(POLICIES)
    unknown = [p for p in args.policies if p not in POLICIES]
    if unknown:
        return fail(prog, f"--policy {unknown[0]!r}: expected one of {', '.join(POLICIES)}")
    if not 1 <= args.nodes <= 10_000:
        return fail(prog, f"--nodes {args.nodes}: expected 1-10000")
    if not 1 <= args.pods <= 250:
        return fail(prog, f"--pods {args.pods}: expected 1-250")
    if not 60 <= args.deadline <= 86_400:
        return fail(prog, f"--deadline {args.deadline:g}: expected 60-86400 seconds")
    if not 1 <= args.jobs <= 8:
        return fail(prog, f"--jobs {args.jobs}: expected 1-8")
    from vpccni.benchmarks.fleet_report import picture, text

    report = measure(args)
    report["png"] = picture(report, args.png)
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
    else:
        sys.stdout.write(text(report))
    return 0
