"""The EmulatedCluster's own promises: a start that fails half-way leaves nothing, and a run killed before
it could clean up (kill -9, no ``finally``) is cleaned up by ``sweep_cluster`` -- ipamd processes (by
PID), namespaces, work directories. Prefixes of their own (``eefl``, ``eecr``), so the module cluster of
the other tests is never swept.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.support import namespaces, root_links, wait_until
from vpccni.errors import UnknownInstanceType
from vpccni.testing.cluster import EmulatedCluster, sweep_cluster

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def leftovers(prefix: str) -> list[str]:
    return namespaces(prefix) + root_links(prefix) + glob.glob(f"/tmp/{prefix}-cluster-*")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_failed_start_leaves_nothing() -> None:
    prefix = "eefl"
    sweep_cluster(prefix)
    cluster = EmulatedCluster(["t3.medium", "no.such-type"], prefix=prefix)
    with pytest.raises(UnknownInstanceType):
        cluster.start()
    assert leftovers(prefix) == []
    cluster.close()  # again: a no-op


# The crashed run: a child process brings a one-node cluster up with a pod, reports, and waits to be killed.
CRASHED_RUN = textwrap.dedent(
    """
    import json, sys, time
    from vpccni.testing.cluster import EmulatedCluster
    cluster = EmulatedCluster(["t3.medium"], prefix="eecr").start()
    pod = cluster.add_pod(cluster.nodes[0], "default", "orphan")
    print(json.dumps({"ipamd": cluster.nodes[0].ipamd_pid, "pod": pod.netns.name}), flush=True)
    time.sleep(600)
    """
)


def test_sweep_cluster_cleans_up_after_a_killed_run() -> None:
    prefix = "eecr"
    sweep_cluster(prefix)
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHED_RUN],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the child cluster did not come up: {child.communicate(timeout=30)[1][-2000:]}"
        report = json.loads(line)
        os.kill(child.pid, signal.SIGKILL)  # no finally, no close(): a crash
        child.wait(timeout=10)
        assert alive(report["ipamd"]), "ipamd should outlive its parent (it is in the node namespace)"
        assert report["pod"] in namespaces(prefix)
        removed = sweep_cluster(prefix)
        assert any(report["pod"] in item for item in removed), removed
        wait_until("the orphaned ipamd to be gone", lambda: not alive(report["ipamd"]), timeout_s=10)
        assert leftovers(prefix) == []
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        with contextlib.suppress(Exception):
            sweep_cluster(prefix)
