"""A fleet run's figures, and the bound they are judged against. Pure: plain data in, plain data out.

:func:`summarize` turns a :class:`~vpccni.sim.fleet.FleetRun` into the row ``vpccni bench fleet`` prints:
time until every pod had an address, its ratio to the bound, calls and throttles, ADDs that waited and
how long, ADDs that never got an address, addresses held idle, what subnet exhaustion did. A failed
operation is counted, never dropped: a pod with no address is in the failed count *and* makes the
time "not reached", and the wait percentiles are over every pod that waited, the ones that never got an
address included (their wait runs to the end of the run).

:func:`needed_bounds` is the bound for the calls the fleet needs (:mod:`vpccni.sim.bound`), computed from
the scenario alone, so every policy is judged against the same number: the calls to give every node its
pods' addresses and its warm ENI (WARM_ENI_TARGET=1, what both policies keep), and to give the pods alone;
never less than the last pod's arrival (a few nodes need so few calls that the buckets bind nothing).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from vpccni.config.limits import require
from vpccni.sim.bound import Bound, bound, enis_needed, fleet_calls
from vpccni.sim.scenario import FleetSpec, NodePlan, fleet_plan

THROTTLE_GOAL_FRACTION = 0.05  # "no storm": at most this share of all calls throttled
RATIO_GOAL = 1.2


def needed_bounds(plans: Iterable[NodePlan], warm_enis: int = 1) -> tuple[Bound, Bound]:
    """(bound with the warm target, bound for the pods alone) for these nodes."""
    plans = list(plans)

    def enis(warm: int) -> list[int]:
        out = []
        for plan in plans:
            limits = require(plan.instance_type)
            out.append(enis_needed(plan.demand, limits.ipv4_per_eni - 1, limits.max_enis, warm_enis=warm))
        return out

    # No pod gets an address before it arrives: a small fleet's bound is its last arrival, not its buckets.
    last_arrival = max((t for plan in plans for t in plan.arrivals), default=0.0)

    def at_least_arrivals(b: Bound) -> Bound:
        return b if b.seconds >= last_arrival else replace(b, seconds=last_arrival, binding="pod arrivals")

    return (at_least_arrivals(bound(fleet_calls(enis(warm_enis)))),
            at_least_arrivals(bound(fleet_calls(enis(0)))))


def _bound_json(b: Bound) -> dict[str, Any]:
    return {"seconds": round(b.seconds, 1), "binding_bucket": b.binding,
            "calls": {load.bucket: load.calls for load in b.loads}}


def _ratio(seconds: float | None, b: Bound) -> float | None:
    if seconds is None or b.seconds <= 0:
        return None
    return round(seconds / b.seconds, 3)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted samples (as vpccni.benchmarks.stats); 0.0 for none."""
    if not ordered:
        return 0.0
    return ordered[max(1, -(-int(q * len(ordered)) // 100)) - 1]


def wait_figures(waits: Sequence[float]) -> dict[str, float]:
    ordered = sorted(waits)
    return {"p50_s": round(percentile(ordered, 50), 1), "p99_s": round(percentile(ordered, 99), 1),
            "max_s": round(ordered[-1], 1) if ordered else 0.0}


def summarize(run: Any, spec: FleetSpec) -> dict[str, Any]:
    """The figures of one policy's run (``run`` is a FleetRun)."""
    warm_bound, pods_bound = needed_bounds(fleet_plan(spec))
    calls = sum(c["calls"] for c in run.calls.values())
    throttled = sum(c["throttled"] for c in run.calls.values())
    errors = Counter({action: c["errors"] for action, c in run.calls.items() if c["errors"]})
    succeeded = {action: c["calls"] - c["throttled"] - c["errors"] for action, c in run.calls.items()}
    waited = [p for p in run.pods if p.attempts > 1 or p.addressed_s is None]
    waits = [(p.addressed_s if p.addressed_s is not None else run.end_s) - p.arrive_s for p in waited]
    never = [p for p in run.pods if p.addressed_s is None]
    last = run.samples[-1]
    peak_held = max((s.held for s in run.samples), default=0)
    subnet_full_nodes = sorted({p.node for p in run.pods if "subnet" in p.last_refusal})
    return {
        "policy": run.policy,
        "nodes": run.nodes,
        "pods": len(run.pods),
        "all_addressed_s": None if run.all_addressed_s is None else round(run.all_addressed_s, 1),
        "ratio_to_bound": _ratio(run.all_addressed_s, warm_bound),
        "ratio_to_pods_only_bound": _ratio(run.all_addressed_s, pods_bound),
        "run_bound_s": round(bound(succeeded).seconds, 1),  # the buckets' time for what this run sent
        "calls": calls,
        "throttled": throttled,
        "throttled_fraction": round(throttled / calls, 4) if calls else 0.0,
        "errors": dict(errors),
        "calls_by_action": run.calls,
        "adds_waited": len(waited),
        "add_wait": wait_figures(waits),
        "adds_failed_for_good": len(never),
        "idle_addresses_end": last.held - last.in_use,
        "held_addresses_end": last.held,
        "held_addresses_peak": peak_held,
        "subnet_full": {"nodes_refused": run.subnet_full_nodes,
                        "nodes_whose_pods_waited_on_it": len(subnet_full_nodes),
                        "pods_left_without_address": sum(1 for p in never if "subnet" in p.last_refusal)},
        "end_s": round(run.end_s, 1),
        "wall_s": round(run.wall_s, 1),
        "fiber_threads": run.fiber_threads,
        "failed_passes": run.failed_passes,
        "ledger": dict(run.extra),
        "timeline": [(round(s.t, 1), s.pods_addressed, s.held, s.in_use) for s in run.samples],
    }


def verdict(row: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether a policy's row meets the fleet goal, and what it misses. Any pod left without an
    address fails it, whatever the ratio."""
    misses = []
    if row["adds_failed_for_good"]:
        misses.append(f"{row['adds_failed_for_good']} pods never got an address")
    ratio = row["ratio_to_bound"]
    if ratio is None or ratio > RATIO_GOAL:
        misses.append("time not within 1.2x of the bound" if ratio else "not every pod got an address")
    if row["throttled_fraction"] > THROTTLE_GOAL_FRACTION:
        misses.append(f"{row['throttled_fraction']:.0%} of calls throttled")
    return not misses, misses


def bounds_json(spec: FleetSpec) -> dict[str, Any]:
    warm_bound, pods_bound = needed_bounds(fleet_plan(spec))
    return {"with_warm_target": _bound_json(warm_bound), "pods_only": _bound_json(pods_bound)}
