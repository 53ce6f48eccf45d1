"""EmulatedCluster: nodes running ipamd, and pods on them, in network namespaces — for tests, ``vpccni demo``
and ``vpccni bench add``.

    with EmulatedCluster(["m5.large", "t3.medium"], prefix="dm") as cluster:
        a, b = cluster.nodes
        pod = cluster.add_pod(a, "default", "web-0")      # the plugin's ADD, exec'd in the node
        print(pod.ip, pod.eni_id, pod.host_ifname)
        assert cluster.pod_to_remote(pod) == pod.ip        # the remote VPC host saw the pod's own address
        assert cluster.pod_to_internet(pod) == a.primary_ip  # SNAT'd to the node's primary address
        cluster.delete_pod(pod)

What :meth:`EmulatedCluster.start` builds (root namespace untouched; every name carries ``prefix``):

* a :class:`~vpccni.localcloud.cloud.LocalCloud` and its
:class:`~vpccni.localcloud.vpc.dataplane.VpcDataplane`
  (``<prefix>-vpc`` router, ``<prefix>-remote`` VPC host, ``<prefix>-inet`` internet host), with a
  WhoAmI TCP server on each host;
* per node: an instance, its namespace ``<prefix>-i-<id>``, node init inside it (vpccni.node.init: the
  datapath sysctls, and the plugin launcher plus Debian's portmap/tuning/bandwidth/loopback installed into
  the cluster's CNI bin dir), the node's conflist (``<workdir>/cni``: its own ipamd socket, the chain asked
  for) and ipamd started inside the namespace with the Linux dataplane and short timers (whatever ipamd
  writes itself -- checkpoint, logs, its own conflist in HOST_CNI_CONFDIR_PATH -- stays in the node's work
  directory); start returns once every ipamd answers STATUS ok (it can serve an ADD).

Pods: :meth:`add_pod` creates ``<prefix>-pod-<hex>`` and execs the plugin ADD inside the node as a runtime
does (plain exec, CNI env, stdin derived from the conflist); the :class:`Pod` carries the address, host
veth and ENI. Callers with their own runtime (libcni) take a namespace from :meth:`pod_netns` and the
node's ``conflist_path``. Probes return the source address the receiver saw.

:meth:`close` removes everything, even after a failure: ipamd processes (by PID), pod and node namespaces
(their links go with them), servers, the cloud, the work directory. A run killed before ``close`` is
cleaned up by :func:`sweep_cluster` with the same prefix.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from vpccni.localcloud.model import Node
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, WhoAmIServer
from vpccni.node.conflist import PLUGIN_TYPE, ConflistOptions
from vpccni.testing.cluster_node import (
    FAST_TIMERS,
    AddressInfo,
    ClusterError,
    ClusterNode,
    NodeIpamd,
    PluginRun,
    Pod,
    exec_plugin,
    init_node,
    k8s_cni_args,
    node_ipamd_env,
    parse_add_result,
    request_config,
    write_conflist,
)
from vpccni.testing.ipamd_process import IpamdPaths
from vpccni.testing.probes import (
    PodEndpoint,
    ping_from_pod,
    tcp_from_pod,
    tcp_pod_to_pod,
    tcp_to_host_port,
    tcp_to_pod,
)
from vpccni.wire.cnicodes import TRY_AGAIN_LATER

if TYPE_CHECKING:
    from vpccni.localcloud.azure.cloud import LocalAzure
    from vpccni.localcloud.cloud import LocalCloud

__all__ = [
    "FAST_TIMERS",
    "AddressInfo",
    "ClusterError",
    "ClusterNode",
    "EmulatedCluster",
    "Pod",
    "PodEndpoint",
    "PluginRun",
    "sweep_cluster",
]

DEFAULT_NODE_TYPES = ("m5.large", "t3.medium")
AZURE_NODE_TYPES = ("Standard_D4s_v5", "Standard_D2s_v5")
# The remote host must be inside the network and outside the nodes' subnet: LocalCloud's VPC is 10.0.0.0/16
# (the dataplane's default 10.0.255.0/24), the local Azure's virtual network 10.224.0.0/12.
AZURE_REMOTE_CIDR = "10.239.255.0/24"
CLOUDS = ("aws", "azure")
DEFAULT_PREFIX = "vc"
CHAINED_PLUGINS = ("portmap", "tuning", "bandwidth", "loopback")  # Debian's, from /usr/lib/cni
_WORKDIR_ROOT = "/tmp"  # short: ipamd's socket path must fit in 108 bytes


def _workdir_pattern(prefix: str) -> str:
    return os.path.join(_WORKDIR_ROOT, f"{prefix}-cluster-")


def sweep_cluster(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove what a crashed cluster run with ``prefix`` left: its namespaces (killing the processes in
    them, ipamd included, by PID), root-namespace links named ``<prefix>*`` and its work directories."""
    removed = sweep_dataplane(prefix)
    for path in glob.glob(_workdir_pattern(prefix) + "*"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(f"dir {path}")
    return removed


class EmulatedCluster:
    """Nodes with ipamd and pods. Context manager; ``start()``/``close()`` also work.

    ``node_types``: one node per entry (default: an m5.large and a t3.medium; on Azure a Standard_D4s_v5
    and a Standard_D2s_v5). ``prefix``: 2-8 lower-case letters/digits naming every namespace
    and directory (two clusters on one machine need two prefixes). ``settings``: ipamd variables for every
    node, on top of :data:`FAST_TIMERS` (e.g. ``{"WARM_IP_TARGET": "3"}``). ``network``: the conflist's
    name. ``tuning_sysctls``/``bandwidth``: chain tuning (with these pod sysctls) and bandwidth after
    portmap. ``profile``/``seed``: the LocalCloud's. ``ready_timeout_s``: how long a node's ipamd may take
    to serve an ADD. ``cloud``: ``aws`` (a LocalCloud, nodes are instances of EC2 types) or ``azure`` (a
    LocalAzure, nodes are VMs of Azure sizes with ipamd's VPCCNI_CLOUD=azure; the same dataplane delivers
    each IP configuration's address, see :mod:`vpccni.localcloud.azure.fabric`). ``payload``: install the
    plugin from this payload directory (as the image carries it, :mod:`vpccni.node.install`) instead of
    the development launcher.
    """

    def __init__(
        self,
        node_types: Sequence[str] | None = None,
        *,
        prefix: str = DEFAULT_PREFIX,
        settings: Mapping[str, str] | None = None,
        network: str = "vpccni",
        tuning_sysctls: Mapping[str, str] | None = None,
        bandwidth: bool = False,
        profile: str = "fast",
        seed: int = 0,
        ready_timeout_s: float = 60.0,
        cloud: str = "aws",
        payload: str | None = None,
    ) -> None:
        if cloud not in CLOUDS:
            raise ClusterError(f"cloud {cloud!r}: expected one of {', '.join(CLOUDS)}")
        self.cloud_name = cloud
        self.prefix = prefix
        self.payload = payload
        self.network = network
        self.settings = {**FAST_TIMERS, **(settings or {})}
        self.ready_timeout_s = ready_timeout_s
        default_types = AZURE_NODE_TYPES if cloud == "azure" else DEFAULT_NODE_TYPES
        self._node_types = list(default_types if node_types is None else node_types)
        self._tuning = dict(tuning_sysctls or {})
        self._bandwidth = bandwidth
        self._cloud: LocalCloud | None = None
        self._azure: LocalAzure | None = None
        if cloud == "azure":
            from vpccni.localcloud.azure.cloud import LocalAzure
            from vpccni.localcloud.azure.fabric import AzureFabric

            self._azure = LocalAzure(profile=profile, seed=seed)
            fabric = AzureFabric(self._azure)
            self.dataplane = VpcDataplane(fabric, prefix=prefix, remote_cidr=AZURE_REMOTE_CIDR)
        else:
            from vpccni.localcloud.cloud import LocalCloud

            self._cloud = LocalCloud(profile=profile, seed=seed)
            self.dataplane = VpcDataplane(self._cloud, prefix=prefix)  # validates the prefix
        self._pods_nsf = NetnsFactory(prefix)
        self.nodes: list[ClusterNode] = []
        self.pods: list[Pod] = []
        self.workdir = ""
        self._servers: dict[str, WhoAmIServer] = {}
        self._started = self._closed = False
        self._node_seq = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> EmulatedCluster:
        if self._started:
            return self
        if self._closed:
            raise ClusterError("a closed cluster cannot be started again")
        self._started = True
        try:
            self.workdir = tempfile.mkdtemp(
                prefix=os.path.basename(_workdir_pattern(self.prefix)), dir=_WORKDIR_ROOT
            )
            (self._azure or self.cloud).start()
            self.dataplane.start()
            self._servers["remote"] = WhoAmIServer(self.dataplane.remote, self.dataplane.remote_ip)
            self._servers["internet"] = WhoAmIServer(self.dataplane.internet, self.dataplane.internet_ip)
            os.makedirs(self.cni_bin_dir)  # node init installs the plugins into it
            nodes = [self._create_node(t, {}) for t in self._node_types]
            for node in nodes:  # start all, then wait: the nodes come up in parallel
                self._spawn_ipamd(node)
            for node in nodes:
                node.wait_serving(self.ready_timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Remove everything; safe to call again. Raises ClusterError listing what could not be removed."""
        if self._closed:
            return
        self._closed = True
        errors: list[str] = []
        for node in self.nodes:
            if node.ipamd is not None:
                with contextlib.suppress(Exception):
                    node.ipamd.terminate(timeout_s=5.0)
        self.pods.clear()
        for server in self._servers.values():  # a socket holds its namespace alive
            server.close()
        self._servers.clear()
        for step in (self._pods_nsf.close, self.dataplane.close, (self._azure or self.cloud).stop):
            try:
                step()
            except Exception as exc:
                errors.append(str(exc))
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise ClusterError("cluster cleanup incomplete: " + "; ".join(errors))

    def __enter__(self) -> EmulatedCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- where things are --------------------------------------------------------------------------

    @property
    def cloud(self) -> LocalCloud:
        """The LocalCloud (EC2) of an ``aws`` cluster."""
        if self._cloud is None:
            raise ClusterError("an azure cluster has no LocalCloud: see .azure")
        return self._cloud

    @property
    def azure(self) -> LocalAzure:
        """The LocalAzure of an ``azure`` cluster."""
        if self._azure is None:
            raise ClusterError("an aws cluster has no LocalAzure: see .cloud")
        return self._azure

    def interface_of(self, node: ClusterNode, address: str) -> tuple[str, int] | None:
        """(interface id, device index) of the node's interface that holds ``address``, per the cloud (EC2's
        ENI or Azure's NIC); None when none does."""
        for eni in self.dataplane.fabric.instance_view(node.instance_id).enis:
            if address in eni.private_ips:
                return eni.eni_id, eni.device_index or 0
        return None

    @property
    def cni_bin_dir(self) -> str:
        """CNI_PATH of every node: our launcher (``vpccni``) and the chained plugins."""
        return os.path.join(self.workdir, "bin")

    @property
    def plugin_path(self) -> str:
        return os.path.join(self.cni_bin_dir, PLUGIN_TYPE)

    @property
    def remote(self) -> Netns:
        """The VPC host in another subnet (address ``remote_ip``)."""
        return self.dataplane.remote

    @property
    def internet(self) -> Netns:
        """The host outside the VPC (address ``internet_ip``)."""
        return self.dataplane.internet

    @property
    def remote_ip(self) -> str:
        return self.dataplane.remote_ip

    @property
    def internet_ip(self) -> str:
        return self.dataplane.internet_ip

    # --- nodes -------------------------------------------------------------------------------------

    def add_node(self, instance_type: str, settings: Mapping[str, str] | None = None) -> ClusterNode:
        """One more node, serving when this returns. ``settings``: its own ipamd variables."""
        node = self._create_node(instance_type, settings or {})
        self.start_ipamd(node)
        return node

    def remove_node(self, node: ClusterNode) -> None:
        """Stop the node's ipamd, remove its pods' namespaces and its own, terminate the instance."""
        if node.ipamd is not None:
            node.ipamd.kill()
        for pod in [p for p in self.pods if p.node is node]:
            pod.netns.remove()
            self.pods.remove(pod)
        self.dataplane.detach_node(node.instance_id)
        if self._cloud is not None:  # a local Azure VM simply stays, stopped being served
            with contextlib.suppress(Exception):
                self._cloud.client().terminate_instances(InstanceIds=[node.instance_id])
        self.nodes.remove(node)
        shutil.rmtree(node.workdir, ignore_errors=True)

    def start_ipamd(self, node: ClusterNode, *, wait: bool = True) -> None:
        """Start the node's ipamd; with ``wait``, return once it answers STATUS ok (it can serve an ADD)."""
        self._spawn_ipamd(node)
        if wait:
            node.wait_serving(self.ready_timeout_s)

    def stop_ipamd(self, node: ClusterNode, *, kill: bool = False) -> int:
        """SIGTERM (a clean stop) or, with ``kill``, SIGKILL (a crash); its exit status."""
        if node.ipamd is None:
            return 0
        return node.ipamd.kill() if kill else node.ipamd.terminate()

    def restart_ipamd(self, node: ClusterNode, settings: Mapping[str, str] | None = None) -> None:
        """Stop and start the node's ipamd; ``settings`` replaces the node's own variables (None keeps
        them). Returns once it serves."""
        self.stop_ipamd(node)
        if settings is not None:
            node.settings = dict(settings)
        self.start_ipamd(node)

    # --- pods --------------------------------------------------------------------------------------

    def pod_netns(self) -> Netns:
        """A fresh pod namespace ``<prefix>-pod-<hex>`` (lo up), removed at close at the latest."""
        return self._pods_nsf.netns("pod")

    def add_pod(
        self,
        node: ClusterNode,
        namespace: str = "default",
        name: str | None = None,
        *,
        retry_s: float = 15.0,
    ) -> Pod:
        """ADD through our plugin in ``node``, as the runtime does; while the answer is "try again later"
        (the pool is growing) retry for up to ``retry_s`` as kubelet would. ClusterError on failure."""
        name = name or f"pod-{secrets.token_hex(3)}"
        ns = self.pod_netns()
        cid = secrets.token_hex(32)
        args = k8s_cni_args(namespace, name, cid)
        deadline = time.monotonic() + retry_s
        try:
            while True:
                run = self.run_plugin(node, "ADD", container_id=cid, pod_netns=ns.path, args=args)
                if run.ok or run.error.get("code") != TRY_AGAIN_LATER or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if not run.ok:
                raise ClusterError(f"ADD {namespace}/{name} on {node.name} failed:\n{run.describe()}")
            result = run.json()
            ip, host_ifname = parse_add_result(result, "eth0")
            info = node.address_info(ip)
        except BaseException:
            ns.remove()
            raise
        pod = Pod(
            namespace, name, node, ns, cid, "eth0", ip, host_ifname, info.eni_id if info else "", result
        )
        self.pods.append(pod)
        return pod

    def delete_pod(self, pod: Pod) -> None:
        """DEL through our plugin (with the ADD result as prevResult), then remove the pod's namespace."""
        try:
            run = self.run_plugin(
                pod.node,
                "DEL",
                container_id=pod.container_id,
                pod_netns=pod.netns.path,
                args=pod.cni_args,
                inject={"prevResult": pod.result},
            )
            if not run.ok:
                raise ClusterError(f"DEL {pod.namespace}/{pod.name} failed:\n{run.describe()}")
        finally:
            pod.netns.remove()
            if pod in self.pods:
                self.pods.remove(pod)

    def run_plugin(
        self,
        node: ClusterNode,
        command: str,
        stdin: bytes | Mapping[str, Any] | None = None,
        *,
        container_id: str = "",
        pod_netns: str = "",
        ifname: str = "eth0",
        args: str = "",
        cni_version: str | None = None,
        inject: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> PluginRun:
        """Exec our plugin in ``node`` with CNI_COMMAND=``command``. stdin defaults to what a runtime
        derives from the node's conflist (``cni_version``: default the conflist's; ``inject``: runtime
        keys such as prevResult). Empty CNI_* values are left unset; ``env`` is added last."""
        if stdin is None:
            stdin = request_config(node.conflist, cni_version=cni_version, inject=inject)
        return exec_plugin(
            node.netns,
            self.plugin_path,
            command,
            stdin,
            container_id=container_id,
            pod_netns=pod_netns,
            ifname=ifname,
            args=args,
            cni_path=self.cni_bin_dir,
            env=env,
        )

    # --- probes (each returns the source address the receiver saw) --------------------------------

    def pod_to_remote(self, pod: PodEndpoint) -> str:
        return tcp_from_pod(pod, self._servers["remote"])

    def pod_to_internet(self, pod: PodEndpoint) -> str:
        return tcp_from_pod(pod, self._servers["internet"])

    def remote_to_pod(self, pod: PodEndpoint) -> str:
        return tcp_to_pod(self.remote, pod)

    def pod_to_pod(self, src: PodEndpoint, dst: PodEndpoint) -> str:
        return tcp_pod_to_pod(src, dst)

    def remote_to_host_port(
        self, node: ClusterNode, host_port: int, pod: PodEndpoint, container_port: int
    ) -> str:
        """TCP from the remote VPC host to ``node``'s primary address:``host_port``, answered only if it
        reached ``pod`` on ``container_port``; the address the pod saw."""
        return tcp_to_host_port(self.remote, node.primary_ip, host_port, pod, container_port)

    def ping(self, pod: PodEndpoint, dst: str) -> bool:
        return ping_from_pod(pod, dst)

    # --- internals ---------------------------------------------------------------------------------

    def _create_node(self, instance_type: str, settings: Mapping[str, str]) -> ClusterNode:
        self._node_seq += 1
        name = f"node-{self._node_seq}"
        instance = self._new_machine(instance_type, name)
        netns = self.dataplane.attach_node(instance.instance_id).netns
        # A directory named after the node's namespace: an Azure instance id is a resource path.
        paths = IpamdPaths(os.path.join(self.workdir, self.dataplane.fabric.netns_role(instance.instance_id)))
        init_node(netns, instance.mac, self.cni_bin_dir, CHAINED_PLUGINS, self.payload)
        options = ConflistOptions(
            name=self.network,
            ipamd_socket=paths.socket,
            plugin_log_file=os.path.join(paths.workdir, "plugin.log"),
            plugin_log_level="debug",
            tuning_sysctls=self._tuning,
            bandwidth=self._bandwidth,
        )
        conflist, conflist_path = write_conflist(paths, options)
        node = ClusterNode(name, instance, netns, paths, conflist, conflist_path, dict(settings))
        self.nodes.append(node)
        return node

    def _new_machine(self, instance_type: str, name: str) -> Node:
        if self._azure is not None:
            from vpccni.localcloud.azure.fabric import node_of

            return node_of(self._azure.add_vm(instance_type))
        return self.cloud.add_node(instance_type, name=f"{self.prefix}-{name}")

    def _spawn_ipamd(self, node: ClusterNode) -> None:
        if node.ipamd is not None and node.ipamd.running():
            raise ClusterError(f"ipamd of {node.name} is already running (PID {node.ipamd.pid})")
        # ipamd's own conflist (HOST_CNI_CONFDIR_PATH) then matches the runtime's, tuning aside.
        chain = {
            "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "debug",
            "ENABLE_BANDWIDTH_PLUGIN": str(self._bandwidth).lower(),
        }
        settings = {**chain, **self.settings, **node.settings}
        env = node_ipamd_env(self.dataplane, node.instance_id, node.paths, settings)
        node.ipamd = NodeIpamd(env, node.paths, self.dataplane, node.instance_id).start()
