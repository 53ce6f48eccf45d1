"""A node's bootstrap, scripted in the emulated VPC, in the order a real node goes through it:

1. kubelet registers the Node with the startup taint ``vpccni.io/agent-not-ready:NoSchedule`` (kmock);
2. the init container's job, inside the node's namespace: ``vpccni init --dev-launcher`` installs the
   plugin (this environment's, as the emulated nodes run it; tests/node installs the image's payload),
   portmap, and the datapath sysctls (rp_filter=2 on the primary interface, ip_forward=1) -- of the node,
   not the machine;
3. ipamd starts inside the node with MY_NODE_NAME and CLUSTER_ENDPOINT. The API server (kmock, a thread
   of this process) listens on the root namespace's loopback, which the node cannot reach, so it is also
   served on a socket created inside the node's namespace;
4. EC2 throttles the first assignments, as it does when a fleet boots together: ipamd answers but its pool
   is empty -- and the node must not look ready: no conflist (kubelet would report the network ready), the
   taint stays;
5. once EC2 answers: the pool has an address, THEN the conflist appears, THEN the taint goes, and the first
   pod ADD -- libcni exec'ing the written conflist's chain in the node on a fresh pod namespace -- succeeds
   and the pod reaches the VPC.

Each phase is timed and printed (never asserted). Everything is named ``nb*`` and removed afterwards, even
on failure; the machine's own namespace, sysctls and 169.254.169.254 are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.kube import KubeCluster
from tests.libcni import Libcni, build_driver, k8s_args
from vpccni.localcloud.cloud import LocalCloud, Node
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns, NetnsFactory, ping
from vpccni.localcloud.vpc.sockets import listening_socket
from vpccni.net.nsutil import read_sysctl_path
from vpccni.node.conflist import CONFLIST_FILENAME
from vpccni.testing.cluster_node import NodeIpamd
from vpccni.testing.ipamd_process import IpamdPaths, ipamd_env
from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.protocol import NoIpReason, Op, Request

PREFIX = "nb"
NODE_NAME = "nb-node-1"
AGENT_POD, AGENT_POD_UID = "vpccni-nb001", "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f"  # the downward API's
STARTUP_TAINT = {"key": "vpccni.io/agent-not-ready", "effect": "NoSchedule"}
SAMPLE_S = 0.02
# Short timers and a wide API budget: the scenario's EC2 is the local cloud's.
IPAMD_SETTINGS = {
    "VPCCNI_POOL_LOOP_PERIOD": "0.2",
    "VPCCNI_API_MUTATING_BUCKET": "50",
    "VPCCNI_API_MUTATING_REFILL": "50",
    "VPCCNI_API_DESCRIBE_BUCKET": "100",
    "VPCCNI_API_DESCRIBE_REFILL": "100",
    "DISABLE_LEAKED_ENI_CLEANUP": "true",
}

@dataclass
class Bootstrap:
    cloud: LocalCloud
    dp: VpcDataplane
    kube: KubeCluster
    pods: NetnsFactory
    node: Node
    workdir: Path

    @property
    def node_ns(self) -> Netns:
        return self.dp.node_netns(self.node.instance_id)

    @property
    def bin_dir(self) -> Path:
        return self.workdir / "opt" / "cni" / "bin"

    @property
    def conflist(self) -> Path:
        return self.workdir / "etc" / "cni" / "net.d" / CONFLIST_FILENAME

    @property
    def paths(self) -> IpamdPaths:
        return IpamdPaths(str(self.workdir / "ipamd"))

    def node_env(self, extra: dict[str, str]) -> dict[str, str]:
        """This process's environment minus vpccni's/AWS's variables, proxies (they would capture the
        node's endpoints) and pytest's (whose presence makes the IMDS client refuse 169.254.169.254: in the
        node's namespace that address is the node's emulated IMDS), plus ``extra``."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VPCCNI_", "HOST_CNI_", "AWS_", "PYTEST_")) and "proxy" not in k.lower()
        }
        return {**env, **extra}

    def tainted(self) -> bool:
        return STARTUP_TAINT in (self.kube.node(NODE_NAME)["spec"].get("taints") or [])

    def status(self) -> str:
        """STATUS over ipamd's socket: "ok" when an ADD would get an address now, else why not."""
        try:
            answer = call(self.paths.socket, Request(op=Op.STATUS), timeout_s=2)
        except IpamdUnreachable:
            return "unreachable"
        if answer.ok:
            return "ok"
        return str(answer.error.reason) if answer.error is not None and answer.error.reason else "?"

    def can_serve(self) -> bool:
        return self.status() == "ok"


@pytest.fixture
def boot() -> Iterator[Bootstrap]:
    sweep_dataplane(PREFIX)  # leftovers of a killed run
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-", dir="/tmp"))  # short: socket paths < 108 bytes
    try:
        with (
            LocalCloud() as cloud,
            VpcDataplane(cloud, prefix=PREFIX) as dp,
            KubeCluster() as kube,
            NetnsFactory(PREFIX) as pods,
        ):
            node = cloud.add_node("m5.large")
            dp.attach_node(node.instance_id)
            yield Bootstrap(cloud, dp, kube, pods, node, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        sweep_dataplane(PREFIX)


@pytest.fixture(scope="module")
def libcni_driver() -> Path:
    """The runtime side: tests/tools/libcni-driver (libcni 1.1.2, as containerd 1.6/1.7), built once."""
    return build_driver()


def wait_for(what: str, check: Any, timeout_s: float = 30.0) -> float:
    """Poll until ``check()`` is true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(SAMPLE_S)
    return time.monotonic()


def test_conflist_after_the_pool_then_taint_removed_then_the_first_pod(
    boot: Bootstrap, libcni_driver: Path
) -> None:
    figures: dict[str, float] = {}
    started = time.monotonic()

    # 1. kubelet registered the Node, tainted until the node agent says otherwise.
    boot.kube.create_node(NODE_NAME, taints=[STARTUP_TAINT], capacity_pods=29)

    # 2. The init container, in the node's namespace (hostNetwork), with the node's IMDS.
    boot.bin_dir.mkdir(parents=True)
    boot.conflist.parent.mkdir(parents=True)
    init_env = boot.node_env({"HOST_CNI_BIN_PATH": str(boot.bin_dir), "VPCCNI_CHAIN_PLUGINS": "portmap"})
    t = time.monotonic()
    init = boot.dp.spawn_in_node(
        boot.node.instance_id,
        [sys.executable, "-m", "vpccni.cli", "init", "--dev-launcher"],
        env=init_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = init.communicate(timeout=120)
    figures["vpccni init"] = time.monotonic() - t
    assert init.returncode == 0, out + err
    assert (boot.bin_dir / "vpccni").read_text().startswith(f"#!{sys.executable} -IS\n")
    assert (boot.bin_dir / "portmap").is_file()
    ns = boot.node_ns.path
    assert read_sysctl_path(ns, "/proc/sys/net/ipv4/conf/eth0/rp_filter") == "2"
    assert read_sysctl_path(ns, "/proc/sys/net/ipv4/ip_forward") == "1"

    # 3. The API server, reachable from inside the node; ipamd started there, while EC2 throttles (4).
    api = boot.kube.serve_on(listening_socket(ns, "127.0.0.1", 0))
    boot.cloud.server.faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded")
    boot.cloud.server.faults.inject("CreateNetworkInterface", "RequestLimitExceeded")
    ec2_endpoint, imds_endpoint = boot.dp.node_endpoints(boot.node.instance_id)
    env = ipamd_env(
        ec2_endpoint=ec2_endpoint,
        region=boot.cloud.region,
        imds_endpoint=imds_endpoint,
        paths=boot.paths,
        settings=IPAMD_SETTINGS,
    )
    env = boot.node_env(
        {
            **env,
            **boot.dp.node_env(boot.node.instance_id),
            **{
                "VPCCNI_DATAPLANE": "linux",
                "MY_NODE_NAME": NODE_NAME,
                "MY_POD_NAME": AGENT_POD,
                "MY_POD_UID": AGENT_POD_UID,
                "CLUSTER_ENDPOINT": api,
                "HOST_CNI_BIN_PATH": str(boot.bin_dir),
                "HOST_CNI_CONFDIR_PATH": str(boot.conflist.parent),
                "AWS_VPC_K8S_PLUGIN_LOG_FILE": str(boot.workdir / "plugin.log"),
            },
        }
    )
    env = {k: v for k, v in env.items() if "proxy" not in k.lower()}
    ipamd = NodeIpamd(env, boot.paths, boot.dp, boot.node.instance_id)
    t = time.monotonic()
    ipamd.start()
    try:
        ipamd.wait_ready(timeout_s=60)
        figures["ipamd start -> socket answers"] = time.monotonic() - t

        # 4. Answering, pool empty: the node must not look ready.
        wait_for("ipamd's pool to be held back by throttling", lambda: boot.status() == NoIpReason.THROTTLED)
        for _ in range(10):
            assert not boot.can_serve()
            assert not boot.conflist.exists(), "a conflist while the pool is empty: kubelet would go Ready"
            assert boot.tainted()
            time.sleep(SAMPLE_S * 5)
        events = [e["involvedObject"] for e in boot.kube.events() if e.get("reason") == "PoolCannotGrow"]
        assert {"kind": "Node", "name": NODE_NAME} in [{k: e[k] for k in ("kind", "name")} for e in events]
        assert any(e["kind"] == "Pod" and e.get("uid") == AGENT_POD_UID for e in events), events

        # 5. EC2 answers: pool, then conflist, then taint, sampled in that order each round.
        boot.cloud.server.faults.clear()
        cleared = time.monotonic()
        first: dict[str, int] = {}
        for sample in range(int(60 / SAMPLE_S)):
            seen = {
                "pool can serve": boot.can_serve(),
                "conflist written": boot.conflist.exists(),
                "taint removed": not boot.tainted(),
            }
            for what, now in seen.items():
                if now and what not in first:
                    first[what] = sample
                    figures[f"throttle cleared -> {what}"] = time.monotonic() - cleared
            if len(first) == len(seen):
                break
            time.sleep(SAMPLE_S)
        assert list(first) == ["pool can serve", "conflist written", "taint removed"], first
        assert first["pool can serve"] <= first["conflist written"] <= first["taint removed"], first

        # The first pod: libcni runs the written conflist's chain inside the node, as containerd would.
        conflist = json.loads(boot.conflist.read_text())
        assert [p["type"] for p in conflist["plugins"]] == ["vpccni", "portmap"]
        assert conflist["plugins"][0]["ipamdSocket"] == boot.paths.socket
        runtime = Libcni(
            libcni_driver,
            boot.conflist,
            [boot.bin_dir],
            boot.workdir / "cni-cache",
            prefix=["ip", "netns", "exec", boot.node_ns.name],
        )
        pod_ns = boot.pods.netns("pod")
        args = k8s_args("default", "first-pod", infra="nbpod0001")
        t = time.monotonic()
        add = runtime.add("nbpod0001", pod_ns.path, args=args)
        figures["first pod ADD"] = time.monotonic() - t
        assert add.returncode == 0, add.describe() + ipamd.log_tail(40)
        pod_ip = add.json()["ips"][0]["address"].partition("/")[0]
        assert ping(pod_ns, boot.dp.remote_ip), f"pod {pod_ip} cannot reach the VPC"
        figures["total, Node registered -> first pod up"] = time.monotonic() - started

        delete = runtime.delete("nbpod0001", pod_ns.path, args=args)
        assert delete.returncode == 0, delete.describe()
        # A clean stop of the node agent keeps the conflist (default) and does not re-taint the node.
        assert ipamd.terminate() == 0, ipamd.log_tail(40)
        assert boot.conflist.exists() and not boot.tainted()
    finally:
        ipamd.kill()

    print("\nnode bootstrap (m5.large, local cloud, EC2 throttled at first):")
    for what, seconds in figures.items():
        print(f"  {what:<45} {seconds * 1000:8.0f} ms")
