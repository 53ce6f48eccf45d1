"""``vpccni init``: the init container's job — install the CNI plugin, set the datapath sysctls.

    vpccni init --sysctl-root /host/proc/sys          # the DaemonSet's init container (the chart)
    vpccni init --dev-launcher --netns node1 --primary-mac 02:..   # an emulated node of the local cloud

Inputs, as aws-node's init takes them, from the environment:

* ``HOST_CNI_BIN_PATH`` (default /host/opt/cni/bin): where the plugins go; must exist (the host mount).
* ``VPCCNI_CHAIN_PLUGINS`` (default ``portmap``): comma-separated reference plugins chained after ours.
  Empty = none.
* ``VPCCNI_IMDS_ENDPOINT``: where the primary interface's MAC is read (``meta-data/mac``; with
  VPCCNI_CLOUD=azure, the first NIC of Azure IMDS's instance document), unless ``--primary-mac`` gives it.

What is installed: by default the plugin payload the image carries (``--payload``, default
/opt/vpccni/payload): a static launcher and a tree with its own interpreter and libraries, so the node
needs no Python; the chained plugins are links to the launcher, which runs the tree's copy of each
(:mod:`vpccni.node.install`). ``--dev-launcher`` instead writes a script running this interpreter and
package, and copies the chained plugins from ``VPCCNI_CNI_PLUGIN_SOURCE`` (default /usr/lib/cni): for a
node that IS this environment (the local cloud's emulated nodes, development).

The sysctls are written under ``--sysctl-root`` (default /proc/sys): a container's own /proc/sys is
read-only, so the chart mounts the node's /proc/sys/net/ipv4 at /host/proc/sys/net/ipv4.

Prints one line per step ("installed", "unchanged", "set", "kept", "removed") and a summary; a re-run on an
initialized node changes nothing and says so. Exit status 0 = done, 2 = bad input (nothing changed),
1 = a step failed (the message names it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from vpccni.console import fail
from vpccni.errors import ConfigError

if TYPE_CHECKING:
    from vpccni.config.settings import Settings

PROG = "vpccni init"
CHAIN_VARIABLE = "VPCCNI_CHAIN_PLUGINS"
SOURCE_VARIABLE = "VPCCNI_CNI_PLUGIN_SOURCE"
DEFAULT_PAYLOAD = "/opt/vpccni/payload"  # where the Containerfile puts it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "environment: HOST_CNI_BIN_PATH (where the plugins go, default /host/opt/cni/bin), "
        f"{CHAIN_VARIABLE} (comma-separated reference plugins to install, default portmap), "
        f"{SOURCE_VARIABLE} (with --dev-launcher: where they are copied from, default /usr/lib/cni), "
        "VPCCNI_IMDS_ENDPOINT (where the primary MAC is read). Exit status: 0 done, 1 a step failed, "
        "2 bad input."
    )
    parser.add_argument(
        "--payload",
        metavar="DIR",
        default=DEFAULT_PAYLOAD,
        help=f"the plugin payload to install (default {DEFAULT_PAYLOAD}, where the image carries it)",
    )
    parser.add_argument(
        "--dev-launcher",
        action="store_true",
        help="install a launcher running this interpreter instead of the payload, and copy the chained "
        f"plugins from {SOURCE_VARIABLE} (only where this environment is the node's own)",
    )
    parser.add_argument(
        "--primary-mac",
        metavar="MAC",
        help="the primary interface's MAC (default: ask IMDS at VPCCNI_IMDS_ENDPOINT)",
    )
    parser.add_argument(
        "--netns",
        metavar="NAME|PATH",
        help="set the sysctls inside this network namespace (an emulated node)",
    )
    parser.add_argument(
        "--sysctl-root",
        metavar="DIR",
        default="/proc/sys",
        help="where the node's /proc/sys is visible (default /proc/sys; the chart: /host/proc/sys)",
    )
    parser.add_argument("--skip-sysctls", action="store_true", help="only install the binaries")


def _chain_plugins(env: Mapping[str, str]) -> tuple[str, ...] | str:
    """The chained plugins, or an error message naming the variable."""
    from vpccni.node.init import DEFAULT_CHAIN_PLUGINS

    raw = env.get(CHAIN_VARIABLE)
    if raw is None:
        return DEFAULT_CHAIN_PLUGINS
    names = [n.strip() for n in raw.split(",")]
    if raw.strip() and not all(names):
        return f"{CHAIN_VARIABLE}={raw!r}: expected comma-separated plugin names, e.g. portmap,bandwidth"
    return tuple(n for n in names if n)


def run(args: argparse.Namespace) -> int:
    from vpccni.config.settings import Settings
    from vpccni.node.init import (
        DEFAULT_PLUGIN_SOURCE,
        InitFailed,
        InitInputError,
        NodeInitOptions,
        run_node_init,
        summary,
    )

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        return fail(PROG, "bad settings:\n" + str(exc))
    chain = _chain_plugins(os.environ)
    if isinstance(chain, str):
        return fail(PROG, chain)
    source = os.environ.get(SOURCE_VARIABLE) or DEFAULT_PLUGIN_SOURCE
    if not source.startswith("/"):
        return fail(PROG, f"{SOURCE_VARIABLE}={source!r}: expected an absolute path")
    if not args.dev_launcher and not args.payload.startswith("/"):
        return fail(PROG, f"--payload {args.payload!r}: expected an absolute path")
    primary_mac = args.primary_mac
    if primary_mac is None and settings.cloud == "azure" and not args.skip_sysctls:
        found = _azure_primary_mac(settings)  # Azure IMDS has no meta-data/mac: its instance document
        if isinstance(found, int):
            return found
        primary_mac = found
    options = NodeInitOptions(
        bin_dir=settings.host_cni_bin_path,
        payload=None if args.dev_launcher else args.payload,
        chain_plugins=chain,
        plugin_source=source,
        sysctls=not args.skip_sysctls,
        sysctl_root=args.sysctl_root,
        primary_mac=primary_mac,
        imds_endpoint=settings.imds_endpoint,
        imds_timeout_s=float(settings.http_timeout),
        netns=args.netns,
    )

    def report(step: object) -> None:
        sys.stdout.write(f"{step}\n")
        sys.stdout.flush()  # a log collector sees each step even if a later one hangs

    try:
        steps = run_node_init(options, report)
    except InitInputError as exc:
        return fail(PROG, str(exc))
    except InitFailed as exc:
        sys.stderr.write(f"{PROG}: failed: {exc}\n")
        return 1
    sys.stdout.write(f"{PROG}: {summary(steps)}\n")
    return 0


def _azure_primary_mac(settings: Settings) -> str | int:
    """The primary NIC's MAC from Azure IMDS's instance document (VPCCNI_CLOUD=azure), or the exit status
    of the failure, said in one line (2: a bad endpoint; 1: IMDS did not answer)."""
    from vpccni.cloud.azure.imds import AzureImdsClient
    from vpccni.errors import ImdsUnavailable

    try:
        client = AzureImdsClient(settings.imds_endpoint, timeout_s=float(settings.http_timeout))
    except ValueError as exc:
        return fail(PROG, f"VPCCNI_IMDS_ENDPOINT: {exc}")
    try:
        interfaces = client.instance().interfaces
    except ImdsUnavailable as exc:
        sys.stderr.write(f"{PROG}: failed: cannot read the primary MAC from Azure IMDS at "
                         f"{settings.imds_endpoint}: {exc}\n")
        return 1
    if not interfaces:
        sys.stderr.write(f"{PROG}: failed: Azure IMDS at {settings.imds_endpoint} lists no NIC\n")
        return 1
    return interfaces[0].mac
