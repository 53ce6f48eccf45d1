"""``vpccni localcloud up``: run the local cloud (EC2 endpoint + one IMDS per node) until told to stop.

    vpccni localcloud up --profile realistic --node m5.large --node t3.medium --json

prints one line of JSON (``ec2_endpoint``, ``region``, ``account_id``, ``vpc_id``, ``subnet_id``,
``security_group_id``, ``nodes``: instance_id, instance_type, imds_endpoint, primary_ip, ...) and serves
until SIGTERM or SIGINT, then shuts down and exits 0. Without ``--json`` it prints a readable summary.

Every input is checked before anything starts (a bad one is one line on stderr and exit status 2): the
profile by argparse, the region against botocore's EC2 regions, each instance type against the limits
table the local EC2 enforces (vpccni's bundled table).

``--cloud azure`` serves the local Azure instead (:mod:`vpccni.localcloud.azure`): an https ARM endpoint
with its own CA and one IMDS per VM; ``--node`` names VM sizes (``Standard_D4s_v5``), ``--region`` the
location (default westeurope). The JSON has ``arm_endpoint``, ``ca_file`` (trust it in your client only),
``subscription_id``, ``tenant_id``, ``location`` and ``vms``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from vpccni.console import fail, stop_on_signals
from vpccni.localcloud.ec2.latency import PROFILE_NAMES

DEFAULT_REGION = "us-west-2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="up")
    up = actions.add_parser("up", help="start the local cloud and serve until SIGTERM/SIGINT")
    add_cloud_arguments(up, default_nodes="none")
    up.add_argument("--cloud", choices=("aws", "azure"), default="aws",
                    help="emulate EC2 (default) or Azure (--node then names VM sizes)")
    up.add_argument("--json", action="store_true", help="print one line of JSON instead of a summary")


def add_cloud_arguments(parser: argparse.ArgumentParser, *, default_nodes: str) -> None:
    """The options shared with ``vpccni demo``: profile, nodes, region, seed."""
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="fast", help="EC2 latency profile")
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="TYPE",
        help=f"add a node of this instance type (repeatable; default: {default_nodes})",
    )
    parser.add_argument(
        "--region", default=DEFAULT_REGION, help=f"region to emulate (default {DEFAULT_REGION})"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for fault injection and address choice")


def check_cloud_arguments(prog: str, args: argparse.Namespace) -> int:
    """0 if region and node types are usable, else reports the first bad one and returns 2."""
    import boto3

    from vpccni.localcloud.cloud import is_known_instance_type

    regions = boto3.session.Session().get_available_regions("ec2")
    if args.region not in regions:
        return fail(prog, f"unknown region {args.region!r} (EC2 regions: {', '.join(regions)})")
    for instance_type in args.node:
        if not is_known_instance_type(instance_type):
            return fail(prog, f"unknown instance type {instance_type!r} (not in DescribeInstanceTypes)")
    return 0


def summary(description: dict[str, Any]) -> str:
    lines = [
        f"EC2 endpoint  {description['ec2_endpoint']}  (region {description['region']}, "
        f"account {description['account_id']}, any credentials)",
    ]
    if "vpc_id" in description:
        network = (description["vpc_id"], description["subnet_id"], description["security_group_id"])
        lines.append("network       " + "  ".join(network))
    for node in description["nodes"]:
        lines.append(
            f"node          {node['instance_id']}  {node['instance_type']:<12} {node['primary_ip']:<15} "
            f"IMDS {node['imds_endpoint']}"
        )
    return "\n".join(lines)


def _run_azure(prog: str, args: argparse.Namespace) -> int:
    from vpccni.cloud.azure.vm_sizes import lookup
    from vpccni.localcloud.azure.cloud import LocalAzure

    for size in args.node:
        if lookup(size) is None:
            return fail(prog, f"unknown VM size {size!r} (not in the bundled Azure size table)")
    location = "westeurope" if args.region == DEFAULT_REGION else args.region
    with (
        stop_on_signals() as stop,
        LocalAzure(location=location, profile=args.profile, seed=args.seed) as cloud,
    ):
        for size in args.node:
            cloud.add_vm(size)
        description = cloud.describe()
        if args.json:
            sys.stdout.write(json.dumps(description, separators=(",", ":")) + "\n")
        else:
            lines = [f"ARM endpoint  {description['arm_endpoint']}  (subscription "
                     f"{description['subscription_id']}, location {location}; "
                     f"trust {description['ca_file']})"]
            lines += [f"vm            {vm['name']}  {vm['size']:<16} {vm['primary_ip']:<15} "
                      f"IMDS {vm['imds_endpoint']}" for vm in description["vms"]]
            sys.stdout.write("\n".join(lines) + "\nserving; SIGTERM or Ctrl-C stops\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    return 0


def run(args: argparse.Namespace) -> int:
    prog = "vpccni localcloud up"
    if getattr(args, "cloud", "aws") == "azure":
        return _run_azure(prog, args)
    status = check_cloud_arguments(prog, args)
    if status:
        return status
    from vpccni.localcloud.cloud import LocalCloud

    with (
        stop_on_signals() as stop,
        LocalCloud(region=args.region, profile=args.profile, seed=args.seed) as cloud,
    ):
        cloud.default_network()
        cloud.scenario(args.node)
        description = cloud.describe()
        if args.json:
            sys.stdout.write(json.dumps(description, separators=(",", ":")) + "\n")
        else:
            sys.stdout.write(summary(description) + "\nserving; SIGTERM or Ctrl-C stops\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    return 0
