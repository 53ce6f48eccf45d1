"""The CNI network configuration list we ship, as a pure function of its inputs.

ipamd (or the init command) writes it into HOST_CNI_CONFDIR_PATH once ipamd serves -- kubelet takes
"conflist present" as "network ready" -- so this module only builds it; it does no I/O and imports
neither program.

Versions: ``"cniVersion": "1.0.0"`` plus ``"cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]``.
Runtimes on libcni <= 1.1.x (containerd 1.6/1.7, Debian's podman 4.3) reject a conflist whose
``cniVersion`` is 1.1.0 and ignore ``cniVersions``, so they keep working at 1.0.0; runtimes on
libcni >= 1.2 pick the highest of both, 1.1.0, and then call GC and STATUS. (aws pins 0.4.0, which
disables GC/STATUS entirely.)

Chain: our plugin first (it creates the interface and returns the result the others amend), then
``portmap`` for hostPort (``snat: true`` so hairpin/localhost hostPort traffic returns through the
node, as aws ships it), then the optional ``tuning`` (pod sysctls, e.g. aws's DISABLE_POD_V6) and
``bandwidth`` (ENABLE_BANDWIDTH_PLUGIN) -- the same order aws uses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vpccni.wire.protocol import DEFAULT_SOCKET_PATH, IDENTIFIER_PATTERN, valid_identifier

CONFLIST_CNI_VERSION = "1.0.0"
CONFLIST_CNI_VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")
DEFAULT_NETWORK_NAME = "vpccni"
PLUGIN_TYPE = "vpccni"  # the launcher's file name in HOST_CNI_BIN_PATH
CONFLIST_FILENAME = "10-vpccni.conflist"
# aws's DISABLE_POD_V6 sysctls, applied by tuning inside the pod.
DISABLE_POD_V6_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
    "net.ipv6.conf.lo.disable_ipv6": "1",
}


@dataclass(frozen=True)
class ConflistOptions:
    """Inputs of the conflist; defaults give the conflist a fresh node gets."""

    name: str = DEFAULT_NETWORK_NAME
    """Network name; part of every allocation key (network, container, ifname)."""
    ipamd_socket: str = DEFAULT_SOCKET_PATH
    """Where the plugin reaches ipamd (VPCCNI_SOCKET_PATH)."""
    plugin_log_file: str = ""
    """AWS_VPC_K8S_PLUGIN_LOG_FILE: a path, or "" / "stderr" for the runtime's log."""
    plugin_log_level: str = ""
    """AWS_VPC_K8S_PLUGIN_LOG_LEVEL: Debug, Info, Warn or Error ("" = the plugin's default, Info)."""
    ipamd_timeout_ms: int = 0
    """How long the plugin waits for ipamd; 0 = its per-verb defaults (ADD 10 s, DEL 5 s ...)."""
    portmap: bool = True
    """Chain portmap for hostPort. aws always does."""
    bandwidth: bool = False
    """ENABLE_BANDWIDTH_PLUGIN: chain bandwidth for the kubernetes.io/*-bandwidth annotations."""
    tuning_sysctls: Mapping[str, str] = field(default_factory=dict)
    """Pod sysctls applied by tuning; empty = no tuning plugin. DISABLE_POD_V6 -> DISABLE_POD_V6_SYSCTLS."""
    disable_check: bool = False
    """Skip CHECK. Debian's portmap/bandwidth 1.1.1 fail CHECK on IPv4-only results (bandwidth panics,
    portmap looks for an IPv6 chain)."""


def build_conflist(options: ConflistOptions | None = None) -> dict[str, Any]:
    """The conflist as a JSON-ready dict. Raises ValueError naming a bad option."""
    opts = options or ConflistOptions()
    if not valid_identifier(opts.name):
        raise ValueError(f"conflist name {opts.name!r} must match {IDENTIFIER_PATTERN}")
    if not opts.ipamd_socket.startswith("/"):
        raise ValueError(f"ipamd socket {opts.ipamd_socket!r} must be an absolute path")
    if opts.plugin_log_file.lower() == "stdout":
        raise ValueError("plugin log file 'stdout' is not allowed: stdout carries the CNI result")
    ours: dict[str, Any] = {"type": PLUGIN_TYPE, "ipamdSocket": opts.ipamd_socket}
    if opts.plugin_log_file:
        ours["pluginLogFile"] = opts.plugin_log_file
    if opts.plugin_log_level:
        ours["pluginLogLevel"] = opts.plugin_log_level
    if opts.ipamd_timeout_ms:
        ours["ipamdTimeoutMs"] = opts.ipamd_timeout_ms
    plugins: list[dict[str, Any]] = [ours]
    if opts.portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    if opts.tuning_sysctls:
        plugins.append({"type": "tuning", "sysctl": dict(sorted(opts.tuning_sysctls.items()))})
    if opts.bandwidth:
        plugins.append({"type": "bandwidth", "capabilities": {"bandwidth": True}})
    conflist: dict[str, Any] = {
        "cniVersion": CONFLIST_CNI_VERSION,
        "cniVersions": list(CONFLIST_CNI_VERSIONS),
        "name": opts.name,
    }
    if opts.disable_check:
        conflist["disableCheck"] = True
    conflist["plugins"] = plugins
    return conflist


def render_conflist(options: ConflistOptions | None = None) -> str:
    """The conflist file's text (stable: same inputs, same bytes)."""
    return json.dumps(build_conflist(options), indent=2) + "\n"
