"""Real ipamd processes for ``vpccni bench fleet --process-checks``: cold start, and RSS with 110 pods.

Cold start: one fresh node of the local cloud with the ``realistic`` latency profile; the clock starts
when ipamd's process is spawned and stops when the first ADD over its socket gets an address (ADD is
sent every few milliseconds until then, as a runtime would for a pod scheduled on a new node). Next to
it, floors measured in the same run: the EC2 calls ipamd must make before it has an address (their
latencies in the profile: DescribeInstances, DescribeNetworkInterfaces, DescribeSubnets,
AssignPrivateIpAddresses) and the interpreter importing ipamd's entry point. Goal: <= 1.5 s.

RSS: ipamd on an m5.4xlarge with 110 pods holding addresses (kubelet's default max pods), read from
/proc (VmRSS now, VmHWM the peak). Goal: <= 60 MiB (aws-node's own gate is 200 MiB). Measured without a
Kubernetes API or plumbing (IPAM only); what those add in a cluster (their imports) is printed beside.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from typing import Any

from vpccni.benchmarks.fleet_real import WAIT_OUT
from vpccni.benchmarks.floors import process_floor
from vpccni.testing.ipamd_process import IpamdPaths, IpamdProcess, ipamd_env
from vpccni.testing.scratch_netns import LABEL, scratch_netns
from vpccni.wire.client import IpamdUnreachable, call
from vpccni.wire.protocol import Op, Request

GOAL_COLD_START_S = 1.5
GOAL_RSS_MIB = 60.0
RSS_PODS = 110
_START_CALLS = ("DescribeInstances", "DescribeNetworkInterfaces", "DescribeSubnets",
                "AssignPrivateIpAddresses")


def _add(socket_path: str, pod: str, netns_fd: int) -> bool:
    """One ADD (IPAM only: the pod's namespace is an empty one, passed open); False while the pod must
    wait (ipamd not up yet, no address yet), RuntimeError on any other refusal."""
    request = Request(op=Op.ADD, network="fleet", container_id=pod, ifname="eth0", netns=LABEL)
    try:
        answer = call(socket_path, request, timeout_s=5.0, netns_fd=netns_fd)
    except IpamdUnreachable:
        return False
    if answer.error is not None and answer.error.kind not in WAIT_OUT:
        raise RuntimeError(f"ipamd refused {pod}: {answer.error}")
    return answer.ok


def _place(socket_path: str, pod: str, netns_fd: int, deadline: float, process: IpamdProcess) -> int:
    """1: ``pod`` got an address; 0 after a short pause: it must wait; TimeoutError past ``deadline``."""
    if _add(socket_path, pod, netns_fd):
        return 1
    if time.monotonic() > deadline:
        raise TimeoutError(f"{pod} not placed in time:\n{process.log_tail()}")
    time.sleep(0.05)
    return 0


def _kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cold_start(instance_type: str = "m5.large") -> dict[str, Any]:
    from vpccni.localcloud import LocalCloud

    # The pod's namespace is made before the clock starts: a runtime has it before it asks.
    with (LocalCloud(profile="realistic") as cloud,
          tempfile.TemporaryDirectory(prefix="vpccni-cold-") as work, scratch_netns() as netns_fd):
        node = cloud.add_node(instance_type)
        paths = IpamdPaths(work)
        env = ipamd_env(ec2_endpoint=cloud.ec2_endpoint, region=cloud.region,
                        imds_endpoint=node.imds_endpoint, paths=paths)
        ec2_floor = sum(cloud.server.latency.delay_for(action) for action in _START_CALLS)
        began = time.monotonic()
        process = IpamdProcess(env, paths).start()
        try:
            while not _add(paths.socket, "first-pod", netns_fd):
                if not process.running():
                    raise RuntimeError(f"ipamd exited before its first address:\n{process.log_tail()}")
                if time.monotonic() - began > 60:
                    raise TimeoutError(f"no address after 60 s:\n{process.log_tail()}")
                time.sleep(0.005)
            seconds = time.monotonic() - began
        finally:
            process.terminate()
    imports = process_floor([sys.executable, "-c", "import ipamd.app.main"], runs=3)
    return {"seconds": round(seconds, 3), "goal_s": GOAL_COLD_START_S, "met": seconds <= GOAL_COLD_START_S,
            "floor_ec2_latency_s": round(ec2_floor, 3), "floor_imports_s": round(imports.p50_s, 3)}


def rss_with_pods(pods: int = RSS_PODS, instance_type: str = "m5.4xlarge") -> dict[str, Any]:
    from vpccni.localcloud import LocalCloud

    with LocalCloud(profile="fast") as cloud, tempfile.TemporaryDirectory(prefix="vpccni-rss-") as work:
        node = cloud.add_node(instance_type)
        paths = IpamdPaths(work)
        env = ipamd_env(ec2_endpoint=cloud.ec2_endpoint, region=cloud.region,
                        imds_endpoint=node.imds_endpoint, paths=paths,
                        settings={"VPCCNI_POOL_LOOP_PERIOD": "0.2"})
        process = IpamdProcess(env, paths).start()
        try:
            process.wait_ready()
            placed, deadline = 0, time.monotonic() + 120
            with scratch_netns() as netns_fd:
                while placed < pods:
                    placed += _place(paths.socket, f"pod-{placed}", netns_fd, deadline, process)
            rss, peak = _kib(process.pid, "VmRSS"), _kib(process.pid, "VmHWM")
        finally:
            process.terminate()
    # VmHWM of a fresh image (ru_maxrss would include the forked parent's pages before exec).
    baseline = subprocess.run([sys.executable, "-c", "print([l.split()[1] for l in open('/proc/self/status') "
                               "if l.startswith('VmHWM')][0])"], capture_output=True, text=True, check=True)
    return {"pods": pods, "rss_mib": round(rss / 1024, 1), "peak_mib": round(peak / 1024, 1),
            "goal_mib": GOAL_RSS_MIB, "met": peak / 1024 <= GOAL_RSS_MIB,
            "floor_interpreter_mib": round(int(baseline.stdout) / 1024, 1),
            "not_measured_here_mib": _production_extras()}


def _production_extras() -> dict[str, float]:
    """What a node in a cluster adds to the measured process (no Kubernetes API, no plumbing here): the
    Kubernetes client (MY_NODE_NAME) and pyroute2 (the Linux dataplane), as RSS their imports add to a
    fresh interpreter that has ipamd's entry point loaded."""
    probe = ("import ipamd.app.main\n"
             "def rss():\n"
             "    return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')][0]\n"
             "a = rss(); import ipamd.k8s.integration; b = rss(); import pyroute2; c = rss()\n"
             "print(b - a, c - b)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    kube, netlink = (int(x) / 1024 for x in done.stdout.split())
    return {"kubernetes_client": round(kube, 1), "pyroute2": round(netlink, 1)}


def process_checks() -> dict[str, Any]:
    cold = cold_start()
    rss = rss_with_pods()
    lines = [
        f"cold start (ipamd spawned -> first pod address, realistic latency): {cold['seconds']:g} s "
        f"(floors: EC2 latency of the start's calls {cold['floor_ec2_latency_s']:g} s, interpreter + "
        f"imports {cold['floor_imports_s']:g} s); goal <= {cold['goal_s']:g} s: "
        f"{'met' if cold['met'] else 'NOT met'}",
        f"ipamd RSS with {rss['pods']} pods: {rss['rss_mib']:g} MiB (peak {rss['peak_mib']:g} MiB; floor: "
        f"a bare interpreter {rss['floor_interpreter_mib']:g} MiB); goal <= {rss['goal_mib']:g} MiB: "
        f"{'met' if rss['met'] else 'NOT met'}",
        "  (measured without a Kubernetes API or plumbing; in a cluster add the Kubernetes client "
        f"{rss['not_measured_here_mib']['kubernetes_client']:g} MiB and pyroute2 "
        f"{rss['not_measured_here_mib']['pyroute2']:g} MiB)",
    ]
    return {"cold_start": cold, "rss": rss, "lines": lines}
