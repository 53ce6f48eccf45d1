"""``vpccni tune``: what would other settings have done on this node? Its own churn, replayed.

    vpccni tune [--from ADDR | --journal FILE ...] [--what-if VAR=VALUE[,VAR=VALUE...]] ...
                [--recommend [--max-wait-p99 S] [--max-calls-per-hour N]] [--json] [--png PATH]

ipamd keeps its node's churn (every ADD and DEL, with what the pool held: ``/v1/journal``, files
``<checkpoint>.churn.N`` next to the checkpoint). tune reads it from a running ipamd (``--from``, its
introspection address; the default is INTROSPECTION_BIND_ADDRESS or 127.0.0.1:61679) or from files
(``--journal``, one or more nodes), and replays it through ipamd's own pool and reconciler code over the
local cloud's EC2 semantics in virtual time (:mod:`vpccni.sim`): once with the settings the node ran
with, once per ``--what-if``. One row per setting: EC2 mutating calls per 1,000 pods and per hour at the
node's rate, idle addresses (mean/peak), addresses held from the subnet, ADDs that would have waited and
how long (p50/p99), time at the ENI limit. Several nodes' journals: the same rows summed per node group
(instance type and zone), and what each subnet gives. ``--recommend`` replays a range of settings and
prints the trade-off frontier (fewest idle addresses for a wait and call budget) with the env lines to
paste into the chart's values. A setting ipamd would refuse is refused here, with ipamd's own message.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from vpccni.console import fail

PROG = "vpccni tune"
DEFAULT_INTROSPECTION = "127.0.0.1:61679"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", metavar="ADDR",
                        default=os.environ.get("INTROSPECTION_BIND_ADDRESS") or DEFAULT_INTROSPECTION,
                        help="a running ipamd's introspection address (host:port or unix:<path>)")
    parser.add_argument("--journal", nargs="+", metavar="FILE", help="journal files (one per node) instead")
    parser.add_argument("--what-if", action="append", default=[], metavar="VAR=VALUE[,VAR=VALUE]",
                        help="settings to forecast, on top of the node's (repeatable)")
    parser.add_argument("--recommend", action="store_true", help="search the knobs; print the frontier")
    parser.add_argument("--max-wait-p99", type=float, default=10.0, metavar="S",
                        help="--recommend: the longest p99 ADD wait to accept, seconds (default 10)")
    parser.add_argument("--max-calls-per-hour", type=float, default=60.0, metavar="N",
                        help="--recommend: the most EC2 mutating calls per hour to accept (default 60)")
    parser.add_argument("--profile", choices=("realistic", "fast"), default="realistic",
                        help="EC2 latency the replay assumes (default realistic)")
    parser.add_argument("--jobs", type=int, default=2, help="replays run side by side (default 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--png", metavar="PATH", help="draw addresses held vs in use over time")


def parse_what_if(spec: str) -> dict[str, str]:
    """``VAR=VALUE,VAR=VALUE`` -> overrides; ValueError naming the part that is not VAR=VALUE."""
    out: dict[str, str] = {}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--what-if {spec!r}: {part!r} is not VAR=VALUE")
        out[name.strip()] = value.strip()
    return out


def _load(args: argparse.Namespace) -> list[str]:
    if args.journal:
        texts = []
        for path in args.journal:
            with open(path, encoding="utf-8", errors="replace") as f:
                texts.append(f.read())
        return texts
    from vpccni.wire.introspection import http_get

    status, body = http_get(args.source, "/v1/journal", timeout_s=30.0)
    if status != 200:
        raise OSError(f"{args.source}/v1/journal: HTTP {status}")
    return [body.decode(errors="replace")]


def _forecast(text: str, name: str, overrides: dict[str, str], profile: str) -> dict[str, Any]:
    import logging

    from vpccni.sim.forecast import forecast
    from vpccni.sim.journal import parse
    from vpccni.sim.replay import replay

    logging.getLogger().addHandler(logging.NullHandler())  # ipamd's own warnings stay out of the table
    journal = parse(text)
    return {"header": dict(journal.header), "forecast": forecast(name, replay(journal, overrides,
                                                                            profile=profile)).to_json()}


def run(args: argparse.Namespace) -> int:
    from vpccni.errors import ConfigError
    from vpccni.sim.journal import parse
    from vpccni.sim.replay import settings_for

    try:
        texts = _load(args)
    except OSError as exc:
        return fail(PROG, f"no journal: {exc}")
    journals = [parse(text) for text in texts]
    empty = [n for n, j in enumerate(journals) if not j.events]
    if empty:
        return fail(PROG, f"journal {empty[0] + 1} holds no churn (no ADD or DEL recorded yet)")
    azure = [n for n, j in enumerate(journals) if j.header.get("settings", {}).get("VPCCNI_CLOUD") == "azure"]
    if azure:  # the replay runs over the local cloud's EC2 with AWS instance limits
        return fail(PROG, f"journal {azure[0] + 1} is from an Azure node (VPCCNI_CLOUD=azure): vpccni tune "
                          "replays AWS nodes only")
    settings: list[tuple[str, dict[str, str]]] = [("current", {})]
    for spec in args.what_if:
        try:
            overrides = parse_what_if(spec)
        except ValueError as exc:
            return fail(PROG, str(exc))
        for journal in journals:
            try:
                settings_for(journal, overrides)
            except ConfigError as bad:
                for problem in bad.problems:
                    fail(PROG, f"--what-if {spec}: {problem}")
                return 2
        settings.append((spec, overrides))
    if not 1 <= args.jobs <= 8:
        return fail(PROG, f"--jobs {args.jobs}: expected 1-8")
    from vpccni.cli.tune_report import build_report, picture, text

    report = build_report(texts, journals, settings, args, _replays)
    if args.png:
        report["png"] = picture(report, args.png)
    sys.stdout.write(json.dumps(report) + "\n" if args.json else text(report))
    return 0


def _replays(jobs: list[tuple[str, str, dict[str, str]]], profile: str, workers: int) -> list[dict[str, Any]]:
    """(journal text, name, overrides) each replayed, ``workers`` at a time."""
    if workers <= 1 or len(jobs) <= 1:
        return [_forecast(text, name, over, profile) for text, name, over in jobs]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context) as pool:
        futures = [pool.submit(_forecast, text, name, over, profile) for text, name, over in jobs]
        return [f.result() for f in futures]
