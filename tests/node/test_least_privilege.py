"""Least privilege, proven: each thing the chart grants a container is removed in turn, and the step that
needs it fails -- with the built image under podman, every other grant exactly as the chart renders it.

A grant is a capability, ``privileged``, hostNetwork or a hostPath mount
(:func:`tests.node.daemonset.grants`).
:data:`NEEDED` is the table: for each grant of each container, the step it is for and how that step
fails without it. The table and the rendered chart must list the same grants -- one granted and not in the
table is unexplained, one in the table and not granted is stale -- and every row is run. A baseline run
with every grant first shows each step passing, so a failure below is the removal's doing.

One emulated node (:mod:`tests.node.emulated`) serves every run; the node's sysctls and bin dir are reset
before each init run, so each one has work to do.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pytest

from scripts.private_podman import PrivatePodman
from tests.node.daemonset import Grant
from tests.node.emulated import EmulatedNode, emulated_node, local_cloud_values, wait_for
from tests.node.support import LABEL
from vpccni.localcloud.vpc.netns import NetnsFactory

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build

INIT, IPAMD = "vpccni-init", "vpccni"
IPAMD_WAIT_S = 60.0


@dataclass(frozen=True)
class Needed:
    step: str  # what the grant is for
    failure: str  # a regular expression: how that step fails without it


NEEDED: dict[tuple[str, Grant], Needed] = {
    (INIT, Grant("capability", "NET_ADMIN")): Needed(
        "set net.ipv4.ip_forward=1 (the kernel checks CAP_NET_ADMIN for the forwarding switch)",
        r"cannot set net\.ipv4\.ip_forward=1: .*Operation not permitted"),
    (INIT, Grant("hostNetwork")): Needed(
        "read the primary interface's MAC from the node's IMDS; set the node's (not a pod's) sysctls",
        r"cannot read the primary MAC from IMDS at http://169\.254\.169\.254"),
    (INIT, Grant("mount", "/host/opt/cni/bin")): Needed(
        "install the plugin payload where the runtime execs plugins",
        r"HOST_CNI_BIN_PATH /host/opt/cni/bin is not a directory"),
    (INIT, Grant("mount", "/host/proc/sys/net/ipv4")): Needed(
        "set rp_filter and ip_forward (the container's own /proc/sys is read-only)",
        r"cannot set net\.ipv4\.conf\.eth0\.rp_filter=2: .*No such file or directory"),
    (IPAMD, Grant("capability", "NET_ADMIN")): Needed(
        "host setup: rules, routes, links and nftables of the node (rtnetlink, nfnetlink)",
        r"cannot start: .*Operation not permitted"),
    (IPAMD, Grant("capability", "SYS_ADMIN")): Needed(
        "plumb a pod: setns(2) into its network namespace, from the descriptor or path the plugin gives",
        r"enter network namespace: fd 3: Operation not permitted"),
    (IPAMD, Grant("hostNetwork")): Needed(
        "read IMDS and reach EC2 as the node, plumb the node's own namespace",
        r"IMDS .*169\.254\.169\.254|IMDS .*Network is unreachable"),
    (IPAMD, Grant("mount", "/host/etc/cni/net.d")): Needed(
        "write the conflist where the runtime reads it (the node is Ready only then)",
        r"cannot write /host/etc/cni/net\.d/10-vpccni\.conflist: No such file or directory"),
    (IPAMD, Grant("mount", "/run/vpccni")): Needed(
        "serve the plugin on the node's socket; keep the checkpoint across restarts",
        r"cannot start: .*Read-only file system: '/run/vpccni'"),
    (IPAMD, Grant("mount", "/host/var/log/aws-routed-eni")): Needed(
        "write ipamd's log on the node (aws-node's /var/log/aws-routed-eni/ipamd.log)",
        r"cannot open the log file /host/var/log/aws-routed-eni/ipamd\.log .*Read-only file system"),
}


@pytest.fixture(scope="module")
def node(podman: PrivatePodman, image: str) -> Iterator[EmulatedNode]:
    values = partial(local_cloud_values, WARM_ENI_TARGET="0", WARM_IP_TARGET="2")
    with emulated_node(podman, image, "lp", "m5.large", values) as emulated:
        yield emulated


@pytest.fixture(scope="module")
def pod_netns(node: EmulatedNode) -> Iterator[str]:
    """A pod's network namespace, for the setns probe (its name carries the node's prefix: swept)."""
    with NetnsFactory("lp") as nsf:
        yield nsf.netns("pod").path


def reset_init(node: EmulatedNode) -> None:
    """The node as before its first init: strict rp_filter, no forwarding, an empty CNI bin dir."""
    node.netns.sysctl("net.ipv4.ip_forward", "0")
    node.netns.run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/eth0/rp_filter")
    for entry in node.path("/opt/cni/bin").iterdir():
        node.runtime.run(["rm", "-rf", f"/opt/cni/bin/{entry.name}"])


def run_init(node: EmulatedNode, without: Grant | None) -> str:
    reset_init(node)
    code, out, err = node.run_init(without)
    assert (code == 0) == (without is None), f"init without {without}: exit {code}\n{out}{err}"
    return out + err


def run_ipamd(node: EmulatedNode, without: Grant | None, failure: str | None = None) -> tuple[bool, str]:
    """ipamd until it serves the node, exits, logs ``failure`` or IPAMD_WAIT_S pass: whether it served the
    node, and what it printed and logged meanwhile."""
    log = node.path("/var/log/aws-routed-eni/ipamd.log")
    offset = log.stat().st_size if log.exists() else 0
    for path in ("/etc/cni/net.d/10-vpccni.conflist", "/run/vpccni/ipamd.sock"):
        node.path(path).unlink(missing_ok=True)  # a run must write them to be seen serving
    name = node.start_ipamd(without)
    try:
        deadline = time.monotonic() + IPAMD_WAIT_S
        while time.monotonic() < deadline and node.running(name) and not node_serves(node):
            if failure and log.exists() and re.search(failure, log.read_text(errors="replace")[offset:]):
                break
            time.sleep(0.3)
        served = node_serves(node)
    finally:
        output = node.stop(name)  # a clean stop removes the socket: served is read before
    if log.exists():
        with open(log, "rb") as f:
            f.seek(offset)
            output += f.read().decode(errors="replace")
    return served, output


def node_serves(node: EmulatedNode) -> bool:
    """What the runtime on the node needs: the conflist and ipamd's socket, at the node's paths."""
    return (node.path("/etc/cni/net.d/10-vpccni.conflist").exists()
            and node.path("/run/vpccni/ipamd.sock").is_socket())


def setns_probe(node: EmulatedNode, netns: str, without: Grant | None) -> str:
    """ipamd's container as rendered (minus ``without``), running vpccni.net.nsutil.run_in_netns -- what
    ipamd's plumbing enters a pod's namespace with -- on a pod namespace handed to it as descriptor 3."""
    code = ("import os; from vpccni.net.nsutil import run_in_netns; "
            "print(run_in_netns(3, lambda: os.readlink('/proc/thread-self/ns/net')))")
    done = node.runtime.podman(
        "run", "--rm", "--preserve-fds", "1", "--label", LABEL, "--name", node.runtime.new_name("setns"),
        *node.run_args(IPAMD, without, command=["python", "-c", code]), check=False, fd3=netns)
    out = (done.stdout + done.stderr).decode(errors="replace")
    entered = done.returncode == 0 and out.strip() == f"net:[{os.stat(netns).st_ino}]"
    assert entered == (without is None), f"setns probe without {without}: exit {done.returncode}\n{out}"
    return out


def test_the_table_explains_exactly_what_the_chart_grants(node: EmulatedNode) -> None:
    granted = {(name, grant) for name in (INIT, IPAMD) for grant in node.grants(name)}
    assert granted - set(NEEDED) == set(), "granted, and no step is known to need it"
    assert set(NEEDED) - granted == set(), "in the table, and no longer granted"


def test_with_every_grant_each_step_passes(node: EmulatedNode, pod_netns: str) -> None:
    out = run_init(node, None)
    assert "set net.ipv4.ip_forward=1" in out and "installed /host/opt/cni/bin/vpccni" in out, out
    served, out = run_ipamd(node, None)
    assert served and "ipamd ready" in out, out[-3000:]
    setns_probe(node, pod_netns, None)


@pytest.mark.parametrize(("name", "grant"), list(NEEDED), ids=[f"{n}-{g}" for n, g in NEEDED])
def test_without_it_its_step_fails(node: EmulatedNode, pod_netns: str, name: str, grant: Grant) -> None:
    needed = NEEDED[name, grant]
    if name == INIT:
        out = run_init(node, grant)
    elif grant == Grant("capability", "SYS_ADMIN"):
        out = setns_probe(node, pod_netns, grant)
    else:
        run_init(node, None)  # the node's sysctls as ipamd expects them
        served, out = run_ipamd(node, grant, needed.failure)
        assert not served, f"ipamd served the node without {grant}:\n{out[-3000:]}"
    lines = [line for line in out.splitlines() if re.search(needed.failure, line)]
    assert lines, f"{needed.step}: expected /{needed.failure}/ in\n{out[-3000:]}"
    print(f"\n  {name} without {grant}: {needed.step}:\n    {lines[0][-300:]}")
    wait_for("no container of ours left running", lambda: not node.runtime.labelled(), 30)
