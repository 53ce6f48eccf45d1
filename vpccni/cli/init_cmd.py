"""``vpccni init``: the init container's job — install the CNI binaries, set the datapath sysctls.

    HOST_CNI_BIN_PATH=/host/opt/cni/bin vpccni init --self-contained --host-fs-root /host/root
                                                                    # in the DaemonSet's init container
    vpccni init --netns node1 --primary-mac 02:..                    # an emulated node of the local cloud

Inputs, as aws-node's init takes them, from the environment:

* ``HOST_CNI_BIN_PATH`` (default /host/opt/cni/bin): where the plugins go; must exist (the host mount).
* ``VPCCNI_CHAIN_PLUGINS`` (default ``portmap``): comma-separated reference plugins chained after ours,
  copied from ``VPCCNI_CNI_PLUGIN_SOURCE`` (default /usr/lib/cni, where Debian's containernetworking-plugins
  installs them). Empty = none.
* ``VPCCNI_IMDS_ENDPOINT``: where the primary interface's MAC is read (``meta-data/mac``; with
  VPCCNI_CLOUD=azure, the first NIC of Azure IMDS's instance document), unless ``--primary-mac`` gives it.

The launcher is a script the HOST runs, so it must name a Python and a package directory that exist on
the host. ``--host-python`` and ``--host-root`` (defaults: this interpreter and this package) say what they
are there; ``--host-library`` the host's site-packages (pyroute2, for the plugin's DEL fallback); and
``--host-fs-root`` where the host's ``/`` is visible to this process, to check those paths exist (default
``/``). In an image, install vpccni under the same path it is mounted at on the host (e.g. /opt/vpccni,
mounted from the host) and the defaults are right.

``--self-contained`` (what the Helm chart runs) needs nothing of vpccni on the host: the plugin's
standard-library-only files are copied into HOST_CNI_BIN_PATH/vpccni.d/ and the launcher runs them with
the host's Python (``--host-python``, default /usr/bin/python3, which must be >= 3.11: checked through
``--host-fs-root``); ``--host-library`` defaults to that interpreter's own site directories, where a host
pyroute2 improves the plugin's DEL fallback (:mod:`vpccni.node.hostcopy`).

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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "environment: HOST_CNI_BIN_PATH (where the plugins go, default /host/opt/cni/bin), "
        f"{CHAIN_VARIABLE} (comma-separated reference plugins to install, default portmap), "
        f"{SOURCE_VARIABLE} (where they are found, default /usr/lib/cni), VPCCNI_IMDS_ENDPOINT "
        "(where the primary MAC is read). Exit status: 0 done, 1 a step failed, 2 bad input."
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
    parser.add_argument("--skip-sysctls", action="store_true", help="only install the binaries")
    parser.add_argument(
        "--self-contained",
        action="store_true",
        help="copy the plugin's stdlib-only files into HOST_CNI_BIN_PATH/vpccni.d and run them with the "
        "host's Python (--host-python, default /usr/bin/python3; needs >= 3.11 on the node)",
    )
    parser.add_argument(
        "--host-python",
        metavar="PATH",
        help="the interpreter the plugin launcher runs, as the host sees it (default: "
        f"{sys.executable}; with --self-contained /usr/bin/python3)",
    )
    parser.add_argument(
        "--host-root",
        metavar="DIR",
        help="the directory holding the vpccni and plugin packages, as the host sees it "
        "(default: this installation's)",
    )
    parser.add_argument(
        "--host-library",
        metavar="DIR",
        action="append",
        help="a host site-packages directory for the DEL fallback's pyroute2 (repeatable; "
        "default: this environment's, when --host-python is not given; with --self-contained, the "
        "host Python's own site directories)",
    )
    parser.add_argument(
        "--host-fs-root",
        metavar="DIR",
        default="/",
        help="where the host's / is visible here, to check the host paths (default /)",
    )


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
    from vpccni.node.hostcopy import DEFAULT_HOST_PYTHON
    from vpccni.node.init import (
        DEFAULT_PLUGIN_SOURCE,
        InitFailed,
        InitInputError,
        LauncherSpec,
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
    if not args.host_fs_root.startswith("/"):
        return fail(PROG, f"--host-fs-root {args.host_fs_root!r}: expected an absolute path")
    if args.self_contained and args.host_root:
        return fail(PROG, "--host-root does not apply with --self-contained (the plugin is copied next to "
                    "the launcher)")
    defaults = LauncherSpec()
    launcher = LauncherSpec(
        python=args.host_python or (DEFAULT_HOST_PYTHON if args.self_contained else defaults.python),
        root=args.host_root or defaults.root,
        libraries=tuple(args.host_library) if args.host_library else None,
        host_fs_root=args.host_fs_root,
        self_contained=args.self_contained,
    )
    primary_mac = args.primary_mac
    if primary_mac is None and settings.cloud == "azure" and not args.skip_sysctls:
        found = _azure_primary_mac(settings)  # Azure IMDS has no meta-data/mac: its instance document
        if isinstance(found, int):
            return found
        primary_mac = found
    options = NodeInitOptions(
        bin_dir=settings.host_cni_bin_path,
        launcher=launcher,
        chain_plugins=chain,
        plugin_source=source,
        sysctls=not args.skip_sysctls,
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
