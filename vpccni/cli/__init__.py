"""The ``vpccni`` command: one sub-command per module, imported only when chosen (fast start).

Each sub-command module defines ``add_arguments(parser)`` and ``run(args) -> int``. Bad input is one
line on stderr and exit status 2 (see :class:`OneLineParser`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "localcloud": ("vpccni.cli.localcloud", "run the EC2-faithful local cloud (moto + EC2 semantics + IMDS)"),
    "config": ("vpccni.cli.config_cmd", "validate settings from the environment; --explain shows sources"),
    "max-pods": ("vpccni.cli.max_pods", "print the max-pods value for kubelet for an instance type"),
    "status": ("vpccni.cli.status", "one screen of ipamd state: ENIs, addresses, targets, why no IP"),
    "bench": ("vpccni.cli.bench", "benchmarks (rpc, churn, add): print figures next to a floor"),
    "demo": ("vpccni.cli.demo", "the local cloud, two nodes and pods with VPC addresses, shown by traffic"),
    "init": ("vpccni.cli.init_cmd", "node init: install CNI binaries, set datapath sysctls"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is exactly one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def fail(prog: str, message: str) -> int:
    """Report a bad input in one line; return the exit status to use (2)."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    return 2


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: vpccni <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    name = args[0]
    if name not in COMMANDS:
        return fail("vpccni", f"unknown command {name!r}; one of: {', '.join(COMMANDS)}")
    module_name, help_ = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = OneLineParser(prog=f"vpccni {name}", description=help_)
    module.add_arguments(parser)
    ns = parser.parse_args(args[1:])
    try:
        return int(module.run(ns))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
