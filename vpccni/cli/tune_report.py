"""``vpccni tune``'s report: the replays it asks for, the table, the frontier, the picture."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from vpccni.benchmarks.plotting import png_axes
from vpccni.sim.fleetview import summed
from vpccni.sim.forecast import Forecast
from vpccni.sim.journal import Journal
from vpccni.sim.recommend import Scored, candidates, env_lines, frontier, pick

Replays = Callable[[list[tuple[str, str, dict[str, str]]], str, int], list[dict[str, Any]]]
COLUMNS = (
    ("mutating_per_1000_pods", "EC2 mutating calls / 1,000 pods"),
    ("mutating_per_hour", "  ... per hour at this node's rate"),
    ("idle", "idle addresses mean / peak"),
    ("subnet", "addresses held from the subnet mean / peak"),
    ("waits", "ADDs that would wait (p50 / p99 s)"),
    ("never_addressed", "pods never addressed"),
    ("eni_limit_s", "time at the ENI limit (s)"),
)


def _as_forecast(doc: dict[str, Any]) -> Forecast:
    data = dict(doc)
    data["timeline"] = tuple(tuple(point) for point in data["timeline"])
    return Forecast(**data)


def build_report(texts: list[str], journals: list[Journal], settings: list[tuple[str, dict[str, str]]],
                 args: argparse.Namespace, replays: Replays) -> dict[str, Any]:
    jobs = [(text, name, over) for name, over in settings for text in texts]
    results = replays(jobs, args.profile, args.jobs)
    rows = []
    for index, (name, over) in enumerate(settings):
        per_node = results[index * len(texts):(index + 1) * len(texts)]
        rows.append({"name": name, "overrides": over, "nodes": per_node,
                     "fleet": summed((r["header"], _as_forecast(r["forecast"])) for r in per_node)
                     if len(texts) > 1 else None})
    report: dict[str, Any] = {
        "command": "tune", "nodes": [dict(j.header) for j in journals],
        "events": sum(len(j.events) for j in journals), "profile": args.profile, "settings": rows,
    }
    if args.recommend:
        report["recommend"] = _recommend(texts, journals, args, replays)
    return report


def _score(name: str, per_node: list[dict[str, Any]], overrides: dict[str, str]) -> Scored:
    fs = [r["forecast"] for r in per_node]
    return Scored(overrides, sum(f["idle_mean"] for f in fs), max(f["wait_p99_s"] for f in fs),
                  sum(f["never_addressed"] for f in fs), sum(f["mutating_per_hour"] for f in fs))


def _recommend(texts: list[str], journals: list[Journal], args: argparse.Namespace,
               replays: Replays) -> dict[str, Any]:
    in_use = [e.assigned for j in journals for e in j.events]
    prefix = any(bool(j.header.get("prefix_delegation")) for j in journals)
    options = candidates(in_use, prefix_delegation=prefix)
    jobs = [(text, f"candidate {n}", over) for n, over in enumerate(options) for text in texts]
    results = replays(jobs, args.profile, args.jobs)
    scored = [_score(f"candidate {n}", results[n * len(texts):(n + 1) * len(texts)], over)
              for n, over in enumerate(options)]
    best = pick(scored, max_wait_p99_s=args.max_wait_p99, max_calls_per_hour=args.max_calls_per_hour)

    def doc(s: Scored) -> dict[str, Any]:
        return {"overrides": {k: v for k, v in s.overrides.items() if v != ""}, "idle_mean": s.idle,
                "wait_p99_s": s.wait_p99_s, "never_addressed": s.never, "mutating_per_hour": s.calls_per_hour,
                "env": env_lines(s.overrides)}

    return {"candidates": len(options), "budget": {"max_wait_p99_s": args.max_wait_p99,
                                                   "max_calls_per_hour": args.max_calls_per_hour},
            "frontier": [doc(s) for s in frontier(scored)], "pick": doc(best) if best else None}


def _cells(f: dict[str, Any]) -> dict[str, str]:
    return {
        "mutating_per_1000_pods": f"{f['mutating_per_1000_pods']:g}",
        "mutating_per_hour": f"{f['mutating_per_hour']:g}",
        "idle": f"{f['idle_mean']:g} / {f['idle_peak']}",
        "subnet": f"{f['subnet_mean']:g} / {f['subnet_peak']}",
        "waits": f"{f['adds_waited']} ({f['wait_p50_s']:g} / {f['wait_p99_s']:g})",
        "never_addressed": str(f["never_addressed"]),
        "eni_limit_s": f"{f['eni_limit_s']:g}",
    }


def text(r: dict[str, Any]) -> str:
    rows = r["settings"]
    lines = []
    for n, header in enumerate(r["nodes"]):
        f0 = rows[0]["nodes"][n]["forecast"]
        lines.append(f"vpccni tune: node {header.get('node_name') or header.get('instance_id', '?')} "
                     f"({header.get('instance_type', '?')}, {header.get('zone', '?')}): {f0['pods']} pods "
                     f"over {f0['hours']:g} h; replayed with ipamd's pool code over the local cloud's EC2 "
                     f"({r['profile']} latency), virtual time")
        cells = [_cells(row["nodes"][n]["forecast"]) for row in rows]
        widths = [2 + max(len(row["name"]), *(len(c[key]) for key, _ in COLUMNS))
                  for row, c in zip(rows, cells, strict=True)]  # one width per setting's column
        names = [row["name"] for row in rows]
        lines.append(f"  {'':<44}" + "".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True)))
        for key, label in COLUMNS:
            values = [c[key] for c in cells]
            lines.append(f"  {label:<44}" + "".join(f"{v:>{w}}" for v, w in zip(values, widths, strict=True)))
    if len(r["nodes"]) > 1:
        for row in rows:
            lines.append(f"  fleet, {row['name']}:")
            for group, g in row["fleet"]["groups"].items():
                lines.append(f"    group {group}: {g['nodes']:g} nodes, {g['mutating_per_hour']:g} mutating "
                             f"calls/h, idle {g['idle_mean']:g} (peaks sum {g['idle_peak']:g}), "
                             f"{g['adds_waited']:g} ADDs waited (worst p99 {g['wait_p99_s_worst']:g} s), "
                             f"{g['never_addressed']:g} never addressed")
            for subnet, s in row["fleet"]["subnets"].items():
                lines.append(f"    subnet {subnet}: {s['addresses_mean']:g} addresses on average "
                             f"(nodes' peaks sum {s['addresses_peak_sum']:g}) for {s['nodes']:g} nodes")
    rec = r.get("recommend")
    if rec:
        budget = rec["budget"]
        lines.append(f"  frontier of {rec['candidates']} settings (fewest idle addresses first; none beats "
                     "another on idle, waits and calls together):")
        for s in rec["frontier"]:
            label = ",".join(f"{k}={v}" for k, v in sorted(s["overrides"].items())) or "(defaults)"
            lines.append(f"    {label:<40} idle {s['idle_mean']:>7g}  p99 wait {s['wait_p99_s']:>7g} s  "
                         f"calls/h {s['mutating_per_hour']:>7g}  never addressed {s['never_addressed']}")
        pick_ = rec["pick"]
        if pick_ is None:
            lines.append(f"  no setting keeps p99 waits <= {budget['max_wait_p99_s']:g} s and calls <= "
                         f"{budget['max_calls_per_hour']:g}/h with every pod addressed")
        else:
            lines.append(f"  within p99 wait <= {budget['max_wait_p99_s']:g} s and <= "
                         f"{budget['max_calls_per_hour']:g} calls/h, fewest idle; paste into the chart's "
                         "values:")
            lines += [f"    {line}" for line in pick_["env"]]
    if r.get("png"):
        lines.append(f"  picture: {r['png']}")
    return "\n".join(lines) + "\n"


def picture(r: dict[str, Any], path: str) -> str:
    """Addresses held vs in use over time (the first node), one colour per setting; the path."""
    with png_axes(path) as ax:
        for row in r["settings"]:
            f = row["nodes"][0]["forecast"]
            times = [t / 3600 for t, _, _ in f["timeline"]]
            line = ax.plot(times, [held for _, held, _ in f["timeline"]], label=f"{row['name']}: held")[0]
            ax.plot(times, [used for _, _, used in f["timeline"]], linestyle=":", color=line.get_color(),
                    label=f"{row['name']}: in use")
        ax.set_xlabel("hours of the node's journal")
        ax.set_ylabel("addresses")
        ax.set_title("addresses held vs in use, current and proposed settings (first node)")
        ax.legend(loc="upper right", fontsize="small")
    return os.path.abspath(path)
