"""Several nodes' forecasts summed: per node group (instance type and zone) and per subnet. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from vpccni.sim.forecast import Forecast


def group_of(header: Mapping[str, Any]) -> str:
    return f"{header.get('instance_type', '?')}/{header.get('zone', '?')}"


def summed(rows: Iterable[tuple[Mapping[str, Any], Forecast]]) -> dict[str, Any]:
    """``rows`` = (journal header, forecast) of one setting across nodes: totals per group and subnet."""
    groups: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    subnets: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for header, f in rows:
        g = groups[group_of(header)]
        g["nodes"] += 1
        g["pods"] += f.pods
        g["mutating_per_hour"] += f.mutating_per_hour
        g["idle_mean"] += f.idle_mean
        g["idle_peak"] += f.idle_peak
        g["adds_waited"] += f.adds_waited
        g["never_addressed"] += f.never_addressed
        g["wait_p99_s_worst"] = max(g["wait_p99_s_worst"], f.wait_p99_s)
        sub = subnets[str(header.get("subnet_id", "?"))]
        sub["nodes"] += 1
        sub["addresses_mean"] += f.subnet_mean
        sub["addresses_peak_sum"] += f.subnet_peak  # nodes' peaks need not coincide: an upper bound
    return {"groups": {k: {m: round(v, 2) for m, v in g.items()} for k, g in sorted(groups.items())},
            "subnets": {k: {m: round(v, 2) for m, v in s.items()} for k, s in sorted(subnets.items())}}
