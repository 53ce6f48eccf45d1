"""``vpccni max-pods``: the kubelet ``--max-pods`` value for an instance type, as one integer.

Same numbers as aws-node's eni-max-pods.txt (no flags) and EKS's max-pods-calculator.sh (with flags);
the formula is in :mod:`vpccni.config.limits`. Only the bundled table is consulted: this command makes no AWS
call, so it works in a bootstrap script before the node has credentials.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from vpccni.config.limits import known_instance_types, lookup, max_pods
from vpccni.console import fail

PROG = "vpccni max-pods"


def _at_least_one(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--instance-type", required=True, metavar="TYPE",
                        help="EC2 instance type, e.g. m5.large")
    parser.add_argument("--prefix-delegation", action="store_true",
                        help="ENABLE_PREFIX_DELEGATION=true (/28 prefixes; Nitro and bare metal only)")
    parser.add_argument("--custom-networking", action="store_true",
                        help="AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true (the primary ENI carries no pods)")
    parser.add_argument("--max-eni", type=_at_least_one, metavar="N", help="MAX_ENI: use at most N ENIs")
    parser.add_argument("--cni-version-cap", action="store_true",
                        help="cap at max-pods-calculator.sh's recommended value (110, or 250 above 30 vCPUs)")


def run(args: argparse.Namespace) -> int:
    limits = lookup(args.instance_type)
    if limits is None:
        known = known_instance_types()
        close = difflib.get_close_matches(args.instance_type, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return fail(PROG, f"unknown instance type {args.instance_type!r} "
                          f"(not among the {len(known)} bundled types){hint}")
    pods = max_pods(limits, prefix_delegation=args.prefix_delegation,
                    custom_networking=args.custom_networking, max_eni=args.max_eni,
                    cni_version_cap=args.cni_version_cap)
    sys.stdout.write(f"{pods}\n")
    return 0
