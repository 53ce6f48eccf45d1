"""The ``vpccni`` command: one sub-command per module, imported only when chosen (fast start).

Each sub-command module defines ``add_arguments(parser)`` and ``run(args) -> int``. Bad input is one
line on stderr and exit status 2 (see :class:`vpccni.console.OneLineParser`). A command that needs the local
cloud (EC2's, on moto) says so in one line and exits 2 on an installation without the ``localcloud`` extra (a
node's), before importing any of it; with ``--cloud azure`` it runs there (the local Azure needs no extra).
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

from vpccni.console import OneLineParser, fail
from vpccni.extras import localcloud_missing


class Command(NamedTuple):
    """One sub-command: the module that implements it, its one-line help, whether it runs the local cloud."""

    module: str
    help: str
    needs_localcloud: bool = False


COMMANDS: dict[str, Command] = {
    "localcloud": Command("vpccni.cli.localcloud",
                          "run the EC2-faithful local cloud (moto + EC2 semantics + IMDS)", True),
    "config": Command("vpccni.cli.config_cmd",
                      "validate settings from the environment; --explain shows sources"),
    "max-pods": Command("vpccni.cli.max_pods", "print the max-pods value for kubelet for an instance type"),
    "status": Command("vpccni.cli.status", "one screen of ipamd state: ENIs, addresses, targets, why no IP"),
    "bench": Command("vpccni.cli.bench", "benchmarks (rpc, churn, add): print figures next to a floor"),
    "demo": Command("vpccni.cli.demo",
                    "the local cloud, two nodes and pods with VPC addresses, shown by traffic", True),
    "init": Command("vpccni.cli.init_cmd", "node init: install CNI binaries, set datapath sysctls"),
    "tune": Command("vpccni.cli.tune",
                    "replay a node's own churn under other settings: calls, idle addresses, waits", True),
}


def dispatch(prog: str, command: Command, argv: list[str]) -> int:
    """Run one sub-command: import its module, parse ``argv`` with its arguments, check its extra.

    The local Azure needs no extra (the base install has the Azure SDK and cryptography), so a command run
    with ``--cloud azure`` runs on a node's install too; the modules import nothing of moto at import."""
    module = importlib.import_module(command.module)
    parser = OneLineParser(prog=prog, description=command.help)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    if (command.needs_localcloud and getattr(args, "cloud", "aws") != "azure"
            and (missing := localcloud_missing(prog)) is not None):
        return fail(prog, missing)
    return int(module.run(args))


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: vpccni <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    name = args[0]
    if name not in COMMANDS:
        return fail("vpccni", f"unknown command {name!r}; one of: {', '.join(COMMANDS)}")
    try:
        return dispatch(f"vpccni {name}", COMMANDS[name], args[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
