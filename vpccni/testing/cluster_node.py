"""One node of an :class:`~vpccni.testing.cluster.EmulatedCluster`: its ipamd, its plugin, its pods.

A :class:`ClusterNode` is a LocalCloud instance attached to the VPC dataplane (a network namespace whose
``eth<N>`` links carry the ENIs' MACs), with the node init done inside that namespace, a conflist of its
own (the socket path is per node) and an ipamd started inside the namespace by :class:`NodeIpamd`, the way
a DaemonSet pod with ``hostNetwork`` runs it. Everything the node writes lives in its work directory.

:func:`exec_plugin` runs a CNI plugin inside a node namespace the way a runtime does: a plain exec with
the ``CNI_*`` variables and the request configuration on stdin (:func:`request_config` derives it from a
conflist as libcni does). :class:`Pod` is what an ADD through it produced.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vpccni.node.conflist import CONFLIST_FILENAME, ConflistOptions, build_conflist
from vpccni.node.init import NodeInitOptions, run_node_init
from vpccni.testing.ipamd_process import IpamdExited, IpamdPaths, IpamdProcess, azure_ipamd_env, ipamd_env
from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.introspection import introspect
from vpccni.wire.protocol import Op, Request, Response

if TYPE_CHECKING:
    from vpccni.localcloud.model import Node
    from vpccni.localcloud.vpc.dataplane import VpcDataplane
    from vpccni.localcloud.vpc.netns import Netns

# Short timers so a scenario takes seconds (the pool reacts within a loop period, released addresses
# come back after 1 s); the API budget is wide so tests are not about throttling. Callers override any.
FAST_TIMERS: dict[str, str] = {
    "VPCCNI_POOL_LOOP_PERIOD": "0.2",
    "VPCCNI_RELEASE_SPACING": "1",
    "VPCCNI_MIN_ENI_AGE": "1",
    "VPCCNI_EC2_RECONCILE_PERIOD": "5",
    "VPCCNI_SUBNET_FULL_BACKOFF": "2",
    "VPCCNI_SCALE_DOWN_WINDOW": "0",
    "IP_COOLDOWN_PERIOD": "1",
    "VPCCNI_API_MUTATING_BUCKET": "50",
    "VPCCNI_API_MUTATING_REFILL": "50",
    "VPCCNI_API_DESCRIBE_BUCKET": "100",
    "VPCCNI_API_DESCRIBE_REFILL": "100",
    "DISABLE_LEAKED_ENI_CLEANUP": "true",
}
PLUGIN_TIMEOUT_S = 60.0

AddressState = Literal["assigned", "cooling", "free"]


class ClusterError(RuntimeError):
    """The cluster could not do what was asked; the message says what and carries the evidence."""


# --- running a plugin like a runtime ---------------------------------------------------------------


@dataclass(frozen=True)
class PluginRun:
    """One plugin exec: what the runtime would see."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        """The CNI error JSON a failed run printed on stdout ({} if it printed none)."""
        try:
            obj = json.loads(self.stdout)
        except ValueError:
            return {}
        return dict(obj) if isinstance(obj, dict) else {}

    def describe(self) -> str:
        out, err = self.stdout.strip(), self.stderr.strip()
        return f"CNI {self.command}: rc={self.returncode}\nstdout={out}\nstderr={err}"


def request_config(
    conflist: Mapping[str, Any],
    *,
    index: int = 0,
    cni_version: str | None = None,
    inject: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stdin a runtime derives for plugin ``index`` of ``conflist``: ``name`` and ``cniVersion``
    injected (default: the conflist's ``cniVersion``, what a libcni <= 1.1 runtime uses), ``capabilities``
    dropped, ``inject`` (``prevResult``, ``runtimeConfig``, ``cni.dev/...``) added."""
    conf = dict(conflist["plugins"][index])
    conf.pop("capabilities", None)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = cni_version or conflist["cniVersion"]
    conf.update(inject or {})
    return conf


def k8s_cni_args(namespace: str, name: str, container_id: str) -> str:
    """CNI_ARGS as kubelet/containerd send them (``IgnoreUnknown=1`` first, or strict plugins fail)."""
    return (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
        f"K8S_POD_INFRA_CONTAINER_ID={container_id}"
    )


def runtime_env(
    command: str,
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "",
    args: str = "",
    cni_path: str = "",
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment a runtime execs a plugin with: PATH, the non-empty CNI_* values (so a test can leave
    one out), then ``env`` (which may set anything, e.g. a bad CNI_IFNAME)."""
    cni = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": cni_path,
    }
    full = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
    full.update({k: v for k, v in cni.items() if v})
    full.update(env or {})
    return full


def exec_plugin(
    netns: Netns,
    plugin: str,
    command: str,
    stdin: bytes | Mapping[str, Any],
    *,
    container_id: str = "",
    pod_netns: str = "",
    ifname: str = "",
    args: str = "",
    cni_path: str = "",
    env: Mapping[str, str] | None = None,
    timeout_s: float = PLUGIN_TIMEOUT_S,
) -> PluginRun:
    """Exec ``plugin`` inside ``netns`` with CNI_COMMAND=``command``; empty CNI_* values are not set (so a
    test can leave one out); ``env`` is added last (and may set anything, e.g. a bad CNI_IFNAME)."""
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    full = runtime_env(
        command,
        container_id=container_id,
        netns=pod_netns,
        ifname=ifname,
        args=args,
        cni_path=cni_path or os.path.dirname(plugin),
        env=env,
    )
    proc = subprocess.run(
        ["ip", "netns", "exec", netns.name, plugin],
        input=data,
        env=full,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    return PluginRun(command, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


# --- a node's files ---------------------------------------------------------------------------------


def init_node(
    netns: Netns, primary_mac: str, bin_dir: str, chain_plugins: Sequence[str], payload: str | None = None
) -> None:
    """What the init container does (vpccni.node.init): the datapath sysctls inside the node's namespace,
    the plugin and the chained plugins into ``bin_dir`` -- from the plugin ``payload`` (a directory as
    the image carries it) or, with None, the development launcher and /usr/lib/cni's plugins."""
    os.makedirs(bin_dir, exist_ok=True)
    options = NodeInitOptions(
        bin_dir=bin_dir,
        payload=payload,
        chain_plugins=tuple(chain_plugins),
        primary_mac=primary_mac,
        netns=netns.path,
    )
    run_node_init(options)


def write_conflist(paths: IpamdPaths, options: ConflistOptions) -> tuple[dict[str, Any], str]:
    """The conflist the node's runtime uses (its own ipamd socket, the chain the cluster was asked for) in
    ``<workdir>/cni``; (conflist, its path). Not ipamd's confdir: ipamd writes its own conflist there
    from its settings, which knows no tuning."""
    conflist = build_conflist(options)
    path = os.path.join(paths.workdir, "cni", CONFLIST_FILENAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.makedirs(os.path.dirname(paths.socket), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(conflist, f, indent=2)
    return conflist, path


# --- ipamd inside a node namespace ----------------------------------------------------------------


class NodeIpamd(IpamdProcess):
    """An :class:`IpamdProcess` started inside a node's namespace (``ip netns exec`` execs in place, so
    the PID is ipamd's own, and the dataplane kills it by PID if the node goes away first)."""

    def __init__(self, env: Mapping[str, str], paths: IpamdPaths, dataplane: VpcDataplane, instance_id: str):
        super().__init__(env, paths)
        self._dataplane = dataplane
        self._instance_id = instance_id

    def start(self) -> NodeIpamd:
        os.makedirs(self.paths.workdir, exist_ok=True)
        confdir = self.env.get("HOST_CNI_CONFDIR_PATH")
        if confdir:
            os.makedirs(confdir, exist_ok=True)
        self._log = open(self.paths.log, "ab")  # noqa: SIM115 - lives as long as the child
        self.proc = self._dataplane.spawn_in_node(
            self._instance_id,
            [sys.executable, "-m", "ipamd"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self


def node_ipamd_env(
    dataplane: VpcDataplane, instance_id: str, paths: IpamdPaths, settings: Mapping[str, str]
) -> dict[str, str]:
    """ipamd's environment inside the node: the node's endpoints (EC2 or ARM on the node's loopback, IMDS
    at 169.254.169.254), the work directory's files, the Linux dataplane, ``settings`` last."""
    api_endpoint, imds_endpoint = dataplane.node_endpoints(instance_id)
    cloud_env = dataplane.node_env(instance_id)
    if cloud_env.get("VPCCNI_CLOUD") == "azure":
        env = azure_ipamd_env(arm_endpoint=api_endpoint, ca_file=cloud_env["VPCCNI_AZURE_CA_BUNDLE"],
                              imds_endpoint=imds_endpoint, paths=paths,
                              settings={"VPCCNI_DATAPLANE": "linux", **settings})
    else:
        env = ipamd_env(
            ec2_endpoint=api_endpoint,
            region=dataplane.cloud.region,
            imds_endpoint=imds_endpoint,
            paths=paths,
            settings={"VPCCNI_DATAPLANE": "linux", **settings},
        )
    # A proxy would capture the node's endpoints (they are only reachable inside the namespace).
    env = {k: v for k, v in env.items() if "proxy" not in k.lower()}
    env.update(cloud_env)
    env.update(
        {
            "VPCCNI_DATAPLANE": "linux",
            # Whatever ipamd writes goes into the work directory, never onto the machine's own paths.
            "HOST_CNI_CONFDIR_PATH": os.path.join(paths.workdir, "net.d"),
            "AWS_VPC_K8S_PLUGIN_LOG_FILE": os.path.join(paths.workdir, "plugin.log"),
            **settings,
        }
    )
    return env


@dataclass(frozen=True)
class AddressInfo:
    """Where ipamd holds an address (from its ``/v1/enis`` introspection)."""

    eni_id: str
    state: AddressState
    pod: str  # "namespace/name" while assigned, else ""


@dataclass(eq=False)
class ClusterNode:
    """One emulated node. ``settings``: the caller's ipamd variables on top of the cluster's."""

    name: str
    node: Node
    netns: Netns
    paths: IpamdPaths
    conflist: dict[str, Any]
    conflist_path: str
    settings: dict[str, str]
    ipamd: NodeIpamd | None = field(default=None, repr=False)

    @property
    def instance_id(self) -> str:
        return self.node.instance_id

    @property
    def instance_type(self) -> str:
        return self.node.instance_type

    @property
    def primary_ip(self) -> str:
        return self.node.primary_ip

    @property
    def primary_eni_id(self) -> str:
        return self.node.primary_eni_id

    @property
    def workdir(self) -> str:
        return self.paths.workdir

    @property
    def socket_path(self) -> str:
        return self.paths.socket

    @property
    def ipamd_pid(self) -> int | None:
        """ipamd's PID while it runs, else None."""
        return self.ipamd.pid if self.ipamd is not None and self.ipamd.running() else None

    # --- asking ipamd ---------------------------------------------------------------------------

    def status(self, timeout_s: float = 2.0) -> Response:
        """ipamd's STATUS answer over its socket (IpamdUnreachable if it does not answer)."""
        return call(self.socket_path, Request(op=Op.STATUS), timeout_s=timeout_s)

    def can_serve_add(self) -> bool:
        with contextlib.suppress(IpamdUnreachable):
            return self.status().ok
        return False

    def pool(self) -> dict[str, Any]:
        """``/v1/pool``: totals, per-ENI counts, the last decision, why the pool cannot grow."""
        doc: dict[str, Any] = introspect(self.paths.introspection, "/v1/pool")
        return doc

    def enis(self) -> dict[str, Any]:
        """``/v1/enis`` in aws-node's shape: ENI id -> CIDRs -> addresses with their pods."""
        doc: dict[str, Any] = introspect(self.paths.introspection, "/v1/enis")["0"]["ENIs"]
        return doc

    def address_info(self, address: str) -> AddressInfo | None:
        """Which ENI holds ``address`` and whether it is assigned, cooling or free; None if no ENI of
        this node holds it (per ipamd)."""
        ip = ipaddress.IPv4Address(address)
        for eni_id, eni in self.enis().items():
            for cidr, block in eni["AvailableIPv4Cidrs"].items():
                if ip not in ipaddress.IPv4Network(cidr):
                    continue
                entry = block["IPAddresses"].get(address)
                if entry is None:
                    return AddressInfo(eni_id, "free", "")
                meta = entry.get("IPAMMetadata") or {}
                if entry["IPAMKey"]["networkName"]:
                    pod = f"{meta.get('k8sPodNamespace', '')}/{meta.get('k8sPodName', '')}"
                    return AddressInfo(eni_id, "assigned", pod)
                return AddressInfo(eni_id, "cooling", "")
        return None

    def wait_serving(self, timeout_s: float) -> None:
        """Until ipamd is ready and answers STATUS ok (it can serve an ADD); ClusterError with its log
        tail if it exits or does not get there in ``timeout_s``."""
        ipamd = self.ipamd
        if ipamd is None:
            raise ClusterError(f"ipamd of {self.name} was not started")
        deadline = time.monotonic() + timeout_s
        try:
            ipamd.wait_ready(timeout_s)
        except (IpamdExited, TimeoutError) as exc:
            raise ClusterError(f"ipamd of {self.name}: {exc}") from None
        while not self.can_serve_add():
            if not ipamd.running():
                raise ClusterError(f"ipamd of {self.name} exited:\n{ipamd.log_tail()}")
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"ipamd of {self.name} cannot serve an ADD after {timeout_s}s:\n{ipamd.log_tail()}"
                )
            time.sleep(0.1)

    def ipamd_log(self, lines: int = 40) -> str:
        return self.ipamd.log_tail(lines) if self.ipamd is not None else "(ipamd never started)"


@dataclass(eq=False)
class Pod:
    """A pod an ADD plumbed: its namespace, its address, the host veth and the ENI ipamd took it from."""

    namespace: str
    name: str
    node: ClusterNode
    netns: Netns
    container_id: str
    ifname: str
    ip: str
    host_ifname: str
    eni_id: str
    result: dict[str, Any]  # the CNI result the plugin printed

    @property
    def on_primary_eni(self) -> bool:
        return self.eni_id == self.node.primary_eni_id

    @property
    def cni_args(self) -> str:
        return k8s_cni_args(self.namespace, self.name, self.container_id)


def parse_add_result(result: Mapping[str, Any], ifname: str) -> tuple[str, str]:
    """(pod address, host veth name) from an ADD result: the container interface carries ``sandbox``,
    the host side does not (what chained plugins rely on too)."""
    interfaces = result.get("interfaces") or []
    container = next(
        (i for i, x in enumerate(interfaces) if x.get("name") == ifname and x.get("sandbox")), None
    )
    host = next((x["name"] for x in interfaces if not x.get("sandbox")), None)
    ips = [ip for ip in result.get("ips") or [] if container is None or ip.get("interface") == container]
    if not ips or host is None:
        raise ClusterError(f"ADD result without a container address or a host interface: {dict(result)}")
    return str(ips[0]["address"]).split("/")[0], str(host)
