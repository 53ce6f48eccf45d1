"""``vpccni bench <name> [options]``: run one benchmark. Adding a benchmark is one line in BENCHMARKS.

A benchmark module defines ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when
chosen, so one benchmark's dependencies never slow another's start.
"""

from __future__ import annotations

import argparse

from vpccni.cli import Command, dispatch

BENCHMARKS: dict[str, Command] = {
    "rpc": Command("vpccni.benchmarks.rpc",
                   "durable ADD+DEL RPCs/s and latency over the ipamd socket, vs fsync"),
    "churn": Command("vpccni.benchmarks.churn",
                     "EC2 calls and idle addresses for a seeded pod churn trace", True),
    "add": Command("vpccni.benchmarks.add",
                   "ADD exec -> result latency of the real plugin, warm pool, vs floors", True),
    "fleet": Command("vpccni.benchmarks.fleet",
                     "thousands of nodes boot against one account's EC2 budget, vs the bound", True),
    "soak": Command("vpccni.benchmarks.soak",
                    "pod loops for a long time while ipamd is killed and EC2 faults come and go; then an "
                    "audit: nothing leaked, held twice or left behind", True),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=list(BENCHMARKS),
                        help="; ".join(f"{name}: {command.help}" for name, command in BENCHMARKS.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (--help)")


def run(args: argparse.Namespace) -> int:
    return dispatch(f"vpccni bench {args.benchmark}", BENCHMARKS[args.benchmark], args.options)
