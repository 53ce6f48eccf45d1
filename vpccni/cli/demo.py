"""``vpccni demo``: the local cloud, two nodes and a handful of pods with VPC addresses, shown by traffic.

    sudo vpccni demo            # a table: pod, node, ENI, address inside, what the VPC/internet hosts saw
    sudo vpccni demo --cloud azure   # the same on the local Azure: VMs, NICs, IP configurations, a VNet
    sudo vpccni demo --json     # one JSON object per pod, one per line
    sudo vpccni demo --keep     # ... and stay up until Ctrl-C (then clean up, exit 0)
    vpccni demo --endpoints     # only the local cloud's endpoints, checked through boto3 and IMDSv2 (no root)

The logic is in :mod:`vpccni.demo.run` (see there for what happens, in order); progress goes to stderr, the
table or JSON to stdout. Bad options are one line on stderr and exit status 2, checked before anything
starts; so is running without root (network namespaces need it). Exit status: 0 when every pod kept its
address inside and outside the VPC, 1 when traffic showed otherwise or something failed (one line on
stderr says what; everything is removed anyway), 130 when interrupted before the table.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import time

from vpccni.cli.localcloud import DEFAULT_REGION, add_cloud_arguments, check_cloud_arguments
from vpccni.config import limits
from vpccni.console import fail

DEFAULT_NODE_TYPES = ("m5.large", "t3.medium")
AZURE_NODE_TYPES = ("Standard_D4s_v5", "Standard_D2s_v5")
NEEDS_ROOT = ("needs root: it creates network namespaces and runs ipamd in them "
              "(try: sudo vpccni demo, or sudo make demo; vpccni demo --endpoints needs no root)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cloud_arguments(parser, default_nodes="m5.large and t3.medium; on Azure Standard_D4s_v5 and "
                        "Standard_D2s_v5")
    parser.add_argument("--cloud", choices=("aws", "azure"), default="aws",
                        help="emulate EC2 (default) or Azure (--node then names VM sizes)")
    parser.add_argument("--json", action="store_true", help="one JSON object per pod instead of the table")
    parser.add_argument("--keep", action="store_true",
                        help="stay up after printing until Ctrl-C or SIGTERM, then clean up")
    parser.add_argument("--endpoints", action="store_true",
                        help="only the local cloud: print its endpoints and check them (no root needed)")
    parser.add_argument("--exit", action="store_true",
                        help="with --endpoints: stop right after the check instead of serving")


def run(args: argparse.Namespace) -> int:
    prog = "vpccni demo"
    started = time.monotonic()
    if args.endpoints:
        if args.cloud == "azure":
            return fail(prog, "--endpoints goes with --cloud aws (the local Azure's endpoints: "
                        "vpccni localcloud up --cloud azure)")
        args.node = args.node or [DEFAULT_NODE_TYPES[0]]
        status = check_cloud_arguments(prog, args)
        if status:
            return status
        from vpccni.demo.endpoints import run_endpoints

        return run_endpoints(prog, args)
    # Cheap checks first, so that a mistake or a missing sudo is answered at once, nothing started.
    if args.cloud == "azure":
        from vpccni.cloud.azure.vm_sizes import known_sizes, lookup

        args.node = args.node or list(AZURE_NODE_TYPES)
        for size in args.node:
            if lookup(size) is None:
                sizes = ", ".join(known_sizes())
                return fail(prog, f"unknown VM size {size!r} (the bundled Azure sizes: {sizes})")
    else:
        args.node = args.node or list(DEFAULT_NODE_TYPES)
        for instance_type in args.node:
            if limits.lookup(instance_type) is None:
                return fail(prog, f"unknown instance type {instance_type!r} (not in DescribeInstanceTypes)")
    if args.exit:
        return fail(prog, "--exit goes with --endpoints (the full demo always exits after its table)")
    if args.region != DEFAULT_REGION:
        return fail(prog, f"--region {args.region}: the emulated cluster runs in {DEFAULT_REGION} (Azure: "
                    "westeurope) only; --region goes with --endpoints")
    if os.geteuid() != 0:
        return fail(prog, NEEDS_ROOT)
    from vpccni.demo.run import DemoOptions, run_demo

    # `kill -USR1 <pid>` prints every thread's stack on stderr: what a demo that seems stuck is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    options = DemoOptions(node_types=tuple(args.node), keep=args.keep, json=args.json,
                          profile=args.profile, seed=args.seed, cloud=args.cloud)
    return run_demo(prog, options, started=started)
