"""``vpccni bench <name> [options]``: run one benchmark. Adding a benchmark is one line in BENCHMARKS.

A benchmark module defines ``add_arguments(parser)`` and ``run(args) -> int``; it is imported only when
chosen, so one benchmark's dependencies never slow another's start.
"""

from __future__ import annotations

import argparse
import importlib

from vpccni.cli import OneLineParser

# name -> (module, one-line help)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "rpc": ("vpccni.benchmarks.rpc", "durable ADD+DEL RPCs/s and latency over the ipamd socket, vs fsync"),
    "churn": ("vpccni.benchmarks.churn", "EC2 calls and idle addresses for a seeded pod churn trace"),
    "add": ("vpccni.benchmarks.add", "ADD exec -> result latency of the real plugin, warm pool, vs floors"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=list(BENCHMARKS),
                        help="; ".join(f"{name}: {help_}" for name, (_, help_) in BENCHMARKS.items()))
    parser.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options (--help)")


def run(args: argparse.Namespace) -> int:
    module_name, help_ = BENCHMARKS[args.benchmark]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"vpccni bench {args.benchmark}", description=help_)
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(args.options)))
