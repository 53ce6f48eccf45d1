"""``vpccni max-pods``: the kubelet ``--max-pods`` value for an instance type, as one integer.

Same numbers as aws-node's eni-max-pods.txt (no flags) and EKS's max-pods-calculator.sh (with flags);
the formula is in :mod:`vpccni.config.limits`. Only the bundled table is consulted: this command makes no AWS
call, so it works in a bootstrap script before the node has credentials.

``--cloud azure --vm-size Standard_D4s_v5 [--nics N]``: min(250, the IP configurations pods can have on
the N NICs the VM boots with), from :mod:`vpccni.cloud.azure.vm_sizes`; no Azure call either.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from vpccni.config.limits import UnknownVcpus, known_instance_types, lookup, max_pods
from vpccni.console import fail

PROG = "vpccni max-pods"


def _at_least_one(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {raw!r}")
    return int(raw)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cloud", choices=("aws", "azure"), default="aws",
                        help="the node's cloud (default aws)")
    parser.add_argument("--instance-type", metavar="TYPE",
                        help="EC2 instance type, e.g. m5.large (required with --cloud aws)")
    parser.add_argument("--vm-size", metavar="SIZE",
                        help="Azure VM size, e.g. Standard_D4s_v5 (required with --cloud azure)")
    parser.add_argument("--nics", type=_at_least_one, default=1, metavar="N",
                        help="--cloud azure: NICs the VM boots with (default 1)")
    parser.add_argument("--prefix-delegation", action="store_true",
                        help="ENABLE_PREFIX_DELEGATION=true (/28 prefixes; Nitro and bare metal only)")
    parser.add_argument("--custom-networking", action="store_true",
                        help="AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true (the primary ENI carries no pods)")
    parser.add_argument("--max-eni", type=_at_least_one, metavar="N", help="MAX_ENI: use at most N ENIs")
    parser.add_argument("--cni-version-cap", action="store_true",
                        help="cap at max-pods-calculator.sh's recommended value (110, or 250 above 30 vCPUs)")


def _run_azure(args: argparse.Namespace) -> int:
    from vpccni.cloud.azure import vm_sizes

    if not args.vm_size:
        return fail(PROG, "--cloud azure needs --vm-size, e.g. --vm-size Standard_D4s_v5")
    size = vm_sizes.lookup(args.vm_size)
    if size is None:
        close = difflib.get_close_matches(args.vm_size, vm_sizes.known_sizes(), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return fail(PROG, f"unknown VM size {args.vm_size!r} (not among the {len(vm_sizes.known_sizes())} "
                          f"bundled sizes){hint}")
    if args.nics > size.max_nics:
        return fail(PROG, f"{size.name} boots with at most {size.max_nics} NICs, got --nics {args.nics}")
    sys.stdout.write(f"{vm_sizes.max_pods(size, args.nics)}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.cloud == "azure":
        return _run_azure(args)
    if not args.instance_type:
        return fail(PROG, "the following arguments are required: --instance-type (e.g. m5.large)")
    limits = lookup(args.instance_type)
    if limits is None:
        known = known_instance_types()
        close = difflib.get_close_matches(args.instance_type, known, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return fail(PROG, f"unknown instance type {args.instance_type!r} "
                          f"(not among the {len(known)} bundled types){hint}")
    try:
        pods = max_pods(limits, prefix_delegation=args.prefix_delegation,
                        custom_networking=args.custom_networking, max_eni=args.max_eni,
                        cni_version_cap=args.cni_version_cap)
    except UnknownVcpus as unknown:
        return fail(PROG, str(unknown))
    sys.stdout.write(f"{pods}\n")
    return 0
