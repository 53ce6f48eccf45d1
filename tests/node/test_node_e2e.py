"""The chart on a node: its DaemonSet run with the built image by a real container runtime, then pods.

One emulated node of the local cloud (:mod:`tests.node.emulated`): a network namespace of the emulated
VPC with its IMDS and EC2 endpoint inside, its disk under a temporary root, Debian's podman with its CNI
backend as its runtime (:mod:`tests.node.noderuntime`: the node's network namespace, a mount namespace of
its own, no Python). The chart is rendered by Helm and each container run as kubelet would ask for it
(:mod:`tests.node.daemonset`: the rendered command, env, securityContext, hostPath mounts, hostNetwork):

1. the init container installs the plugin payload and sets the node's sysctls;
2. ipamd runs in its own mount and PID namespaces in the node's network namespace, fills its pool from
   the local cloud, writes the conflist where the runtime reads it, removes the startup taint, and its
   probe commands answer inside the container;
3. the runtime starts pods on the network the conflist describes: podman 4.3 (libcni 1.1.2) execs the
   installed payload -- VERSION, then ADD -- with the machine's Python hidden; each pod gets a VPC address
   that EC2 and ipamd's checkpoint hold, and the VPC's remote host sees that address; removing the pods
   (DEL from podman's cleanup process) releases them, and EC2 and the checkpoint agree.

Step 3 is the point of the descriptor: the runtime names the pod's network namespace by a path in ITS
mount namespace (``/run/netns/netns-*``), which ipamd, in a mount namespace of its own, could not open;
the plugin opens it there and passes it to ipamd with its request.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from functools import partial

import pytest

from scripts.private_podman import PrivatePodman
from tests.node.daemonset import probe_commands
from tests.node.emulated import STARTUP_TAINT, EmulatedNode, emulated_node, local_cloud_values, wait_for
from tests.node.support import LABEL
from vpccni.localcloud.vpc.netns import WhoAmIServer
from vpccni.net.nsutil import run_in_netns

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build

PODS = 5
WARM = 6  # WARM_IP_TARGET: every pod's address is in the pool before it starts; 6 stay after they go
POD_LABEL = "vpccni-test-pod"


@pytest.fixture(scope="module")
def node(podman: PrivatePodman, image: str) -> Iterator[EmulatedNode]:
    values = partial(local_cloud_values, WARM_ENI_TARGET="0", WARM_IP_TARGET=str(WARM))
    with emulated_node(podman, image, "ne", "m5.xlarge", values) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def init(node: EmulatedNode) -> tuple[int, str, str]:
    return node.run_init()


@pytest.fixture(scope="module")
def ipamd(node: EmulatedNode, init: tuple[int, str, str]) -> Iterator[str]:
    assert init[0] == 0, init
    name = node.start_ipamd()
    try:
        yield name
    finally:
        output = node.stop(name)
        print(f"\nipamd's output:\n{output[-2000:]}")


def test_init_installs_the_payload_and_sets_the_nodes_sysctls(
    node: EmulatedNode, init: tuple[int, str, str]
) -> None:
    code, out, err = init
    assert code == 0, out + err
    bin_dir = node.path("/opt/cni/bin")
    tree = os.readlink(bin_dir / "vpccni.d" / "current")
    files = sum(1 for p in (bin_dir / "vpccni.d" / tree).rglob("*") if not p.is_dir())
    assert out.splitlines() == [
        f"installed /host/opt/cni/bin/vpccni.d/{tree} ({files} files)",
        "installed /host/opt/cni/bin/vpccni",
        f"installed /host/opt/cni/bin/vpccni.d/current (-> {tree})",
        "installed /host/opt/cni/bin/portmap (-> vpccni)",
        "set net.ipv4.conf.eth0.rp_filter=2 (was 1; loose on the primary interface eth0)",
        "set net.ipv4.ip_forward=1 (was 0; the node routes pods)",
        "vpccni init: 6 changes, 0 already in place",
    ]
    assert os.readlink(bin_dir / "portmap") == "vpccni"
    assert node.netns.run("cat", "/proc/sys/net/ipv4/conf/eth0/rp_filter").stdout.strip() == "2"
    again = node.run_init()  # a restarted pod's init: nothing to do
    assert again[0] == 0 and again[1].splitlines()[-1].endswith("nothing to change: the node was already "
                                                                  "initialized"), again


def test_ipamd_serves_the_node_from_its_own_mount_and_pid_namespaces(node: EmulatedNode, ipamd: str) -> None:
    conflist = node.path("/etc/cni/net.d/10-vpccni.conflist")
    wait_for("ipamd's conflist on the node", lambda: conflist.exists() or not node.running(ipamd), 90)
    assert conflist.exists(), node.stop(ipamd)
    assert node.path("/run/vpccni/ipamd.sock").is_socket()
    assert "ipamd ready" in node.path("/var/log/aws-routed-eni/ipamd.log").read_text()
    wait_for("the startup taint to go", lambda: STARTUP_TAINT not in (node.kube.node("node-1")["spec"].get(
        "taints") or []), 30)
    pid = int(node.runtime.podman("inspect", "--format", "{{.State.Pid}}", ipamd).stdout)

    def ns(pid: int | str, kind: str) -> str:
        return os.readlink(f"/proc/{pid}/ns/{kind}")

    assert ns(pid, "net") == ns(node.runtime.pid, "net") != ns("self", "net")  # hostNetwork: the node's
    assert ns(pid, "mnt") not in (ns(node.runtime.pid, "mnt"), ns("self", "mnt"))
    assert ns(pid, "pid") != ns("self", "pid")
    for kind, command in probe_commands(node.spec, "vpccni").items():
        done = node.runtime.podman("exec", ipamd, *command, check=False)
        assert done.returncode == 0, (kind, done.stdout, done.stderr)


def pod_address(node: EmulatedNode, pod: str) -> tuple[int, str, str]:
    """(PID, container ID, address on the vpccni network) of a running pod."""
    template = '{{.State.Pid}} {{.Id}} {{(index .NetworkSettings.Networks "vpccni").IPAddress}}'
    out = node.runtime.podman("inspect", "--format", template, pod).stdout.decode().split()
    return int(out[0]), out[1], out[2]


def seen_by(pid: int, server: WhoAmIServer) -> str:
    """TCP from the pod's network namespace to the VPC host's server: the source address it saw."""
    sock = run_in_netns(f"/proc/{pid}/ns/net", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    with sock:
        sock.settimeout(5)
        sock.connect((server.host, server.port))
        return sock.makefile().readline().strip()


def allocations(node: EmulatedNode) -> dict[str, str]:
    """Container ID -> address, from ipamd's checkpoint on the node's disk."""
    return {a["container_id"]: a["address"] for a in node.checkpoint()["allocations"]}


def test_a_container_runtime_starts_pods_on_the_vpc_and_releases_them(node: EmulatedNode, ipamd: str) -> None:
    wait_for(f"{WARM} free addresses", lambda: len(node.ipamd_addresses()) >= WARM, 60)
    hidden = node.runtime.run(["sh", "-c", "python3 -c pass || /usr/bin/python3 -c pass"])
    assert hidden.returncode != 0, "the node runtime's mount namespace still has a Python"
    timings: dict[str, float] = {}
    pods: dict[str, tuple[int, str, str]] = {}
    with WhoAmIServer(node.dp.remote, node.dp.remote_ip) as remote:
        try:
            for n in range(PODS):
                name = f"pod-{n}-{node.runtime.new_name('p')[-8:]}"
                started = time.monotonic()
                run = node.runtime.podman("run", "--detach", "--pull=never", "--network", "vpccni",
                                          "--label", LABEL, "--label", POD_LABEL, "--name", name,
                                          node.image, "sleep", "600", check=False)
                timings[f"podman run {name}"] = time.monotonic() - started
                assert run.returncode == 0, run.stderr.decode()
                pods[name] = pod_address(node, name)
            ec2, held = node.ec2_addresses(), allocations(node)
            for name, (pid, cid, ip) in pods.items():
                assert ip in ec2, (name, ip, sorted(ec2))
                assert held.get(cid) == ip, (name, held)
                assert seen_by(pid, remote) == ip, f"the VPC host did not see {name}'s own address {ip}"
        finally:
            removed = {}
            for name in pods:
                started = time.monotonic()
                removed[name] = node.runtime.podman("rm", "--force", "--time", "0", name, check=False)
                timings[f"podman rm {name}"] = time.monotonic() - started
    for name, done in removed.items():  # the DEL ran in podman's cleanup process, with its environment
        assert done.returncode == 0 and b"rror" not in done.stderr, (name, done.stderr)
    assert not set(allocations(node)) & {cid for _, cid, _ in pods.values()}
    wait_for("EC2 and ipamd to agree on the node's addresses",
             lambda: node.ec2_addresses() == node.ipamd_addresses() and len(node.ec2_addresses()) == WARM, 60)
    log = node.path("/var/log/aws-routed-eni/plugin.log").read_text()
    assert log.count("released by ipamd") >= PODS, log[-3000:]
    print("\n" + "\n".join(f"  {what:<40} {s * 1000:6.0f} ms" for what, s in timings.items()))

