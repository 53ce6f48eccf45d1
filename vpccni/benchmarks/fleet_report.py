"""How ``vpccni bench fleet`` shows its figures: the table, and the picture (pods with an address over time
for every policy, the bound as a line). Formatting only: the figures come from :mod:`vpccni.sim.summary`."""

from __future__ import annotations

import os
from typing import Any

from vpccni.benchmarks.plotting import png_axes


def _cell(value: Any) -> str:
    if value is None:
        return "not reached"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def text(r: dict[str, Any]) -> str:
    runs = r["runs"]
    warm, pods_only = r["bound"]["with_warm_target"], r["bound"]["pods_only"]

    def row(label: str, values: list[str]) -> tuple[str, list[str]]:
        return label, values

    def each(fn: Any) -> list[str]:
        return [fn(run) for run in runs]

    cells = [
        row("", each(lambda run: run["policy"])),
        row("time until every pod has an address (s)", each(lambda run: _cell(run["all_addressed_s"]))),
        row("ratio to the bound", each(lambda run: _cell(run["ratio_to_bound"]))),
        row("ratio to the pods-only bound", each(lambda run: _cell(run["ratio_to_pods_only_bound"]))),
        row("EC2 calls", each(lambda run: str(run["calls"]))),
        row("throttled calls (share)", each(
            lambda run: f"{run['throttled']} ({run['throttled_fraction']:.1%})")),
        row("other errors", each(lambda run: str(sum(run["errors"].values())))),
        row("ADDs that waited", each(lambda run: str(run["adds_waited"]))),
        row("wait p50 / p99 / max (s)", each(lambda run: "/".join(
            f"{run['add_wait'][k]:g}" for k in ("p50_s", "p99_s", "max_s")))),
        row("pods that never got an address", each(lambda run: str(run["adds_failed_for_good"]))),
        row("addresses held / idle at the end", each(
            lambda run: f"{run['held_addresses_end']} / {run['idle_addresses_end']}")),
        row("nodes refused by a full subnet", each(lambda run: str(run["subnet_full"]["nodes_refused"]))),
        row("  pods left without address by it", each(
            lambda run: str(run["subnet_full"]["pods_left_without_address"]))),
        row("wall seconds", each(lambda run: f"{run['wall_s']:g}")),
    ]
    width = 2 + max(len(v) for _, values in cells for v in values)  # every cell known: one column width
    lines = [
        f"vpccni bench fleet: {r['nodes']} nodes boot at once, {r['pods']} pods ({r['pods_per_node']} per "
        f"node, capped per type), seed {r['seed']}; mix {', '.join(f'{t} x{w}' for t, w in r['mix'])}",
        f"  bound: {warm['seconds']:g} s for the calls the fleet needs (pods + one warm ENI per node; "
        f"{warm['binding_bucket']} bucket), {pods_only['seconds']:g} s for the pods alone",
        *(f"  {label:<42}" + "".join(f"{v:>{width}}" for v in values) for label, values in cells),
    ]
    for run in runs:
        verdict = "met" if run["goal"]["met"] else "NOT met (" + "; ".join(run["goal"]["misses"]) + ")"
        lines.append(f"  goal for {run['policy']}: within {r['goal']['ratio']:g}x of the bound, no pod "
                     f"without an address, <= {r['goal']['throttled_fraction']:.0%} throttled: {verdict}")
    checks = r.get("process_checks")
    if checks:
        lines += [f"  {line}" for line in checks["lines"]]
    lines.append(f"  picture: {r['png']}")
    lines.append(f"  machine: load {r['machine']['load_1m']} on {r['machine']['cpus']:.0f} CPUs")
    return "\n".join(lines) + "\n"


def picture(r: dict[str, Any], path: str) -> str:
    """Pods with an address over time, one line per policy, the bound as a vertical line; the path."""
    with png_axes(path) as ax:
        for run in r["runs"]:
            times = [t / 60 for t, *_ in run["timeline"]]
            addressed = [p for _, p, *_ in run["timeline"]]
            ax.plot(times, addressed, label=run["policy"])
        bound = r["bound"]["with_warm_target"]["seconds"] / 60
        ax.axvline(bound, color="black", linestyle="--", label=f"bound ({bound:.1f} min)")
        ax.axvline(r["bound"]["pods_only"]["seconds"] / 60, color="grey", linestyle=":",
                   label="bound, pods alone")
        ax.axhline(r["pods"], color="grey", linewidth=0.5)
        # A policy that never finishes runs flat to the deadline: show up to 3x the bound, or the last finish.
        finished = [run["all_addressed_s"] / 60 for run in r["runs"] if run["all_addressed_s"] is not None]
        ax.set_xlim(0, max([3 * bound, *(1.1 * t for t in finished)]))
        ax.set_xlabel("minutes since the fleet started")
        ax.set_ylabel("pods with an address")
        ax.set_title(f"{r['nodes']} nodes boot against one account's EC2 budget")
        ax.legend(loc="lower right")
    return os.path.abspath(path)
