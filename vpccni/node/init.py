"""Node init: what the init container does before ipamd starts (aws-vpc-cni-init's job).

1. Install into HOST_CNI_BIN_PATH the CNI plugin (``vpccni``, the conflist's plugin ``type``) and the
   chained reference plugins (VPCCNI_CHAIN_PLUGINS, default ``portmap``). Two sources:

   * the plugin payload (``--payload``, the image's ``/opt/vpccni/payload``; what the Helm chart runs):
     a static launcher and a tree with its own interpreter, libraries and reference plugins, so the node
     needs no Python and no libc of ours; the chained plugins become links to the launcher
     (:mod:`vpccni.node.install`);
   * the development launcher (no payload): a script running THIS interpreter and package, and the
     chained plugins copied from VPCCNI_CNI_PLUGIN_SOURCE (default ``/usr/lib/cni``). Right only where
     this environment is the node's own, as in the emulated nodes of the local cloud
     (:mod:`vpccni.node.launcher`).
2. Set the datapath sysctls: loose reverse-path filtering (``rp_filter=2``) on the primary interface —
   replies to pods on secondary ENIs leave by another interface than their requests came in, which strict
   mode (1) would drop — and ``net.ipv4.ip_forward=1`` (the node routes pod traffic). The primary interface
   is the link whose MAC is the one IMDS reports (``meta-data/mac``), as aws finds it. They are written
   under ``sysctl_root`` (default ``/proc/sys``): a container's own ``/proc/sys`` is read-only, so the
   chart mounts the node's ``/proc/sys/net/ipv4`` at ``/host/proc/sys/net/ipv4`` and passes
   ``--sysctl-root /host/proc/sys``. ``net.*`` sysctls resolve against the writer's network namespace
   (the node's, with hostNetwork) whatever the mount, and the kernel lets uid 0 write them, with one
   check more for ``ip_forward``: CAP_NET_ADMIN over that namespace.

Every step is idempotent: a file identical to what would be written (bytes and mode 0755) is left alone,
a sysctl already at its value is not written, and each step says which way it went — so a re-run reports
"nothing to change". Every file is replaced by a rename (:mod:`vpccni.node.files`).

Everything is checked before anything is changed (the directory exists, the payload is whole and carries
every chained plugin, the MAC names a link), so a bad input changes nothing.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from vpccni.cloud.aws.imds import DEFAULT_IMDS_ENDPOINT
from vpccni.errors import ImdsUnavailable, PlumbingError
from vpccni.node.conflist import PLUGIN_TYPE
from vpccni.node.files import (
    EXECUTABLE_MODE,
    InitFailed,
    InitInputError,
    Step,
    StepKind,
    install_atomically,
)
from vpccni.node.launcher import library_paths, package_root, render_launcher

__all__ = ["EXECUTABLE_MODE", "InitFailed", "InitInputError", "NodeInitOptions", "Step", "StepKind",
           "install_atomically", "run_node_init", "summary"]

DEFAULT_PLUGIN_SOURCE = "/usr/lib/cni"
DEFAULT_CHAIN_PLUGINS = ("portmap",)
DEFAULT_SYSCTL_ROOT = "/proc/sys"
RP_FILTER_LOOSE = "2"
IP_FORWARD_KEY = "net.ipv4.ip_forward"
_PLUGIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class NodeInitOptions:
    bin_dir: str
    """HOST_CNI_BIN_PATH: where the runtime looks for CNI plugins (must exist: it is the host mount)."""
    payload: str | None = None
    """The plugin payload's directory; None = the development launcher (this interpreter)."""
    chain_plugins: tuple[str, ...] = DEFAULT_CHAIN_PLUGINS
    plugin_source: str = DEFAULT_PLUGIN_SOURCE
    """Development launcher only: where the chained plugins are copied from."""
    sysctls: bool = True
    """Set the datapath sysctls (False: install files only)."""
    sysctl_root: str = DEFAULT_SYSCTL_ROOT
    """Where the node's /proc/sys is visible (only its net/ipv4 part is used)."""
    primary_mac: str | None = None
    """The primary interface's MAC; None = ask IMDS."""
    imds_endpoint: str = DEFAULT_IMDS_ENDPOINT
    imds_timeout_s: float = 10.0
    netns: str | None = None
    """Set the sysctls inside this network namespace (a name under /run/netns or a path); None = here."""


# --- files ---------------------------------------------------------------------------------------------


def _check_bin_dir(bin_dir: str) -> None:
    if not bin_dir.startswith("/"):
        raise InitInputError(f"HOST_CNI_BIN_PATH {bin_dir!r} must be an absolute path")
    if not os.path.isdir(bin_dir):
        raise InitFailed(
            f"HOST_CNI_BIN_PATH {bin_dir} is not a directory (is the host's CNI bin dir mounted there?)"
        )
    if not os.access(bin_dir, os.W_OK | os.X_OK):
        raise InitFailed(f"HOST_CNI_BIN_PATH {bin_dir} is not writable by this process")


def _check_chain_names(names: Sequence[str]) -> tuple[str, ...]:
    for name in names:
        if not _PLUGIN_NAME.match(name) or name == PLUGIN_TYPE:
            raise InitInputError(
                f"chained plugin name {name!r} is not a plain file name other than {PLUGIN_TYPE!r}"
            )
    return tuple(dict.fromkeys(names))


def _chained_sources(options: NodeInitOptions, names: Sequence[str]) -> list[tuple[str, str]]:
    """(name, source path) of each chained plugin to copy, every one checked to exist and be executable."""
    found = []
    for name in names:
        source = os.path.join(options.plugin_source, name)
        if not os.path.isfile(source) or not os.access(source, os.X_OK):
            raise InitFailed(
                f"chained plugin {name!r} not found as an executable file in {options.plugin_source} "
                "(VPCCNI_CNI_PLUGIN_SOURCE)"
            )
        found.append((name, source))
    return found


def dev_launcher_text() -> bytes:
    """The development launcher: this interpreter, this package, this environment's libraries."""
    root = package_root()
    if not os.path.isfile(os.path.join(root, "plugin", "main.py")):
        raise InitFailed(f"{root} holds no plugin/main.py: this installation cannot run the plugin")
    try:
        return render_launcher(sys.executable, root, library_paths()).encode("utf-8")
    except ValueError as exc:
        raise InitInputError(f"plugin launcher: {exc}") from None


def _bytes_stream(data: bytes) -> Callable[[], BinaryIO]:
    return lambda: io.BytesIO(data)


def _file_stream(path: str) -> Callable[[], BinaryIO]:
    return lambda: open(path, "rb")


# --- the primary interface and sysctls -----------------------------------------------------------------


def normalize_mac(raw: str) -> str:
    """``02:AB:...`` or ``02-ab-...`` as ``02:ab:...``; InitInputError if it is not a MAC."""
    mac = raw.strip().lower().replace("-", ":")
    if not _MAC.match(mac):
        raise InitInputError(f"{raw!r} is not a MAC address (six hex bytes, e.g. 02:ab:cd:ef:01:23)")
    return mac


def primary_mac_from_imds(endpoint: str, timeout_s: float) -> str:
    from vpccni.cloud.aws.imds import ImdsClient, ImdsSettings

    try:
        client = ImdsClient(ImdsSettings(endpoint=endpoint, timeout_s=timeout_s))
    except ValueError as exc:
        raise InitInputError(f"IMDS endpoint {endpoint}: {exc}") from None
    try:
        raw = client.mac()
    except ImdsUnavailable as exc:
        raise InitFailed(f"cannot read the primary MAC from IMDS at {endpoint}: {exc}") from exc
    try:
        return normalize_mac(raw)
    except InitInputError:
        raise InitFailed(f"IMDS at {endpoint} answered meta-data/mac with {raw!r}, not a MAC") from None


def link_with_mac(mac: str, netns: str | None) -> str:
    """The name of the link whose MAC is ``mac`` (the lowest ifindex if several share it)."""
    from vpccni.net.nsutil import NetnsMissing, iproute

    where = f"network namespace {netns}" if netns else "this network namespace"
    try:
        with iproute(netns) as ipr:
            links = [
                (link["index"], str(link.get_attr("IFLA_IFNAME")))
                for link in ipr.get_links()
                if str(link.get_attr("IFLA_ADDRESS") or "").lower() == mac
            ]
    except NetnsMissing as exc:
        raise InitFailed(f"{where} does not exist: {exc.reason}") from exc
    except PlumbingError as exc:
        raise InitFailed(f"cannot list the links of {where}: {exc}") from exc
    if not links:
        raise InitFailed(
            f"no link in {where} has MAC {mac} (the primary interface's, from IMDS or --primary-mac)"
        )
    return min(links)[1]


def _ensure_sysctl(netns: str | None, path: str, key: str, value: str, why: str) -> Step:
    from vpccni.net.nsutil import read_sysctl_path, write_sysctl_path

    try:
        before = read_sysctl_path(netns, path)
        if before == value:
            return Step("kept", f"{key}={value}")
        write_sysctl_path(netns, path, value)
        after = read_sysctl_path(netns, path)
    except PlumbingError as exc:
        raise InitFailed(f"cannot set {key}={value}: {exc}") from exc
    if after != value:
        raise InitFailed(f"{key} reads {after!r} after writing {value!r}")
    return Step("set", f"{key}={value}", f"was {before}; {why}")


def datapath_sysctls(ifname: str, netns: str | None, sysctl_root: str = DEFAULT_SYSCTL_ROOT) -> list[Step]:
    from vpccni.net.nsutil import sysctl_path

    def under_root(path: str) -> str:  # sysctl_path checks each part; only the root differs
        return sysctl_root.rstrip("/") + path.removeprefix(DEFAULT_SYSCTL_ROOT)

    return [
        _ensure_sysctl(
            netns,
            under_root(sysctl_path("net", "ipv4", "conf", ifname, "rp_filter")),
            f"net.ipv4.conf.{ifname}.rp_filter",
            RP_FILTER_LOOSE,
            f"loose on the primary interface {ifname}",
        ),
        _ensure_sysctl(netns, under_root(sysctl_path("net", "ipv4", "ip_forward")), IP_FORWARD_KEY, "1",
                       "the node routes pods"),
    ]


# --- the whole job -------------------------------------------------------------------------------------


def run_node_init(options: NodeInitOptions, report: Callable[[Step], None] = lambda _: None) -> list[Step]:
    """Do (or confirm) every step; ``report`` hears each as it completes. Raises InitInputError or
    InitFailed naming what failed; nothing is changed unless every check passed first."""
    if options.netns is not None:
        from vpccni.net.nsutil import netns_path

        try:
            netns_path(options.netns)
        except PlumbingError as exc:
            raise InitInputError(f"--netns: {exc.reason}") from None
    if not options.sysctl_root.startswith("/"):
        raise InitInputError(f"--sysctl-root {options.sysctl_root!r} must be an absolute path")
    _check_bin_dir(options.bin_dir)
    chain = _check_chain_names(options.chain_plugins)
    payload = None
    if options.payload is not None:
        from vpccni.node.install import check_chain, read_payload

        payload = read_payload(options.payload)
        check_chain(payload, chain)
        copies: list[tuple[str, str]] = []
        launcher = b""
    else:
        copies = _chained_sources(options, chain)
        launcher = dev_launcher_text()
    ifname = None
    if options.sysctls:
        if options.primary_mac is not None:
            try:
                mac = normalize_mac(options.primary_mac)
            except InitInputError as exc:
                raise InitInputError(f"--primary-mac: {exc}") from None
        else:
            mac = primary_mac_from_imds(options.imds_endpoint, options.imds_timeout_s)
        ifname = link_with_mac(mac, options.netns)

    steps: list[Step] = []

    def done(step: Step) -> None:
        steps.append(step)
        report(step)

    if payload is not None:
        from vpccni.node.install import install_payload

        for step in install_payload(payload, options.bin_dir, chain):
            done(step)
    else:
        done(install_atomically(os.path.join(options.bin_dir, PLUGIN_TYPE), _bytes_stream(launcher)))
        for name, source in copies:
            dest = os.path.join(options.bin_dir, name)
            if os.path.lexists(dest) and os.path.samefile(source, dest):
                done(Step("unchanged", dest, "it is the source"))
                continue
            done(install_atomically(dest, _file_stream(source)))
    if ifname is not None:
        for step in datapath_sysctls(ifname, options.netns, options.sysctl_root):
            done(step)
    return steps


def summary(steps: Sequence[Step]) -> str:
    changed = sum(step.changed for step in steps)
    if not changed:
        return "nothing to change: the node was already initialized"
    return f"{changed} change{'s' if changed != 1 else ''}, {len(steps) - changed} already in place"
