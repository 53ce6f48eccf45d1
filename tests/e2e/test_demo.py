"""``vpccni demo`` as a user runs it: a real subprocess that brings up the local cloud, two nodes running
ipamd and pods added through the real plugin, and reports what traffic showed.

Checked from its output and from the machine afterwards: every pod's address inside is the one the
remote VPC host saw; the internet host saw the node's primary address; at least one pod sits on a
secondary ENI; nothing is left behind (the run's namespaces, work directory, ipamd processes) after a
normal exit, after Ctrl-C while ``--keep`` holds it up, and after SIGTERM in the middle of bringing it up.
Without root it refuses in one line with exit status 2 and starts nothing.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests import REPO
from vpccni.demo.report import PodRow
from vpccni.demo.run import azure_pods_per_node, one_line, pods_per_node, problems_of
from vpccni.localcloud.vpc.netns import sweep

DEMO = [sys.executable, "-m", "vpccni.cli", "demo"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
RUN_TIMEOUT_S = 180.0


class DemoRun:
    """``vpccni demo`` in the background; stdout and stderr lines collected by threads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*DEMO, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            assert stream is not None
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    @staticmethod
    def _pump(stream: IO[str], sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, where: list[str], timeout_s: float = RUN_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not any(re.search(pattern, line) for line in list(where)):
            assert self.proc.poll() is None, f"demo ended before {pattern!r}:\n" + "\n".join(self.err)
            assert time.monotonic() < deadline, f"no {pattern!r} in {timeout_s}s:\n" + "\n".join(self.err)
            time.sleep(0.05)

    def finish(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        try:
            code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            # Stuck: the demo dumps every thread's stack on SIGUSR1 (faulthandler); report it, then kill.
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(2.0)
            self.kill()
            time.sleep(0.1)
            stderr = "\n".join(self.err)
            raise AssertionError(f"demo still running after {timeout_s}s; its stderr:\n{stderr}") from None
        time.sleep(0.1)  # let the pump threads drain the pipes
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def known_prefix(self) -> str | None:
        """The run's namespace prefix, from its "namespaces dmXXXX-*" progress line, once printed."""
        for line in list(self.err):
            found = re.search(r"namespaces (dm[0-9a-f]{4})-\*", line)
            if found:
                return found.group(1)
        return None

    @property
    def prefix(self) -> str:
        prefix = self.known_prefix
        if prefix is None:
            raise AssertionError("no namespace prefix in the progress lines:\n" + "\n".join(self.err))
        return prefix

    @property
    def ipamd_pids(self) -> list[int]:
        return [int(p) for line in self.err for p in re.findall(r"ipamd PID (\d+)", line)]


@pytest.fixture
def demo_runs() -> Iterator[list[DemoRun]]:
    runs: list[DemoRun] = []
    yield runs
    for run in runs:
        # A demo that ends by itself cleans up after itself (that is what the tests check). One that has to
        # be killed here, after a failed test, cannot: what it made is swept instead -- its namespaces with
        # the processes inside them (by PID), its links and its work directory.
        run.kill()
        prefix = run.known_prefix
        if prefix is not None:
            sweep(prefix)
            for path in glob.glob(f"/tmp/{prefix}-*"):
                shutil.rmtree(path, ignore_errors=True)


def leftovers(run: DemoRun) -> list[str]:
    """What of this run is still on the machine: namespaces, work directories, live ipamd processes."""
    prefix = run.prefix
    found = [f"netns {os.path.basename(p)}" for p in glob.glob(f"/run/netns/{prefix}-*")]
    found += [f"dir {p}" for p in glob.glob(f"/tmp/{prefix}-*")]
    for pid in run.ipamd_pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"ipamd" in cmdline:
            found.append(f"ipamd process {pid}")
    return found


def test_demo_json_shows_each_pod_with_one_address_inside_and_out_and_removes_everything(
    demo_runs: list[DemoRun],
) -> None:
    run = DemoRun("--json")
    demo_runs.append(run)
    assert run.finish() == 0, "\n".join(run.err)
    print("\n".join(run.err))  # the progress lines, for whoever reads the test log
    rows = [json.loads(line) for line in run.out]
    assert len(rows) == sum(pods_per_node(["m5.large", "t3.medium"])) == 8
    assert {r["instance_type"] for r in rows} == {"m5.large", "t3.medium"}
    for row in rows:
        assert row["pod_ip"] == row["remote_saw"], row
        assert row["internet_saw"] == row["node_primary_ip"] != row["pod_ip"], row
        assert row["remote_reached_pod"] is True, row
    assert len({r["pod_ip"] for r in rows}) == len(rows), "two pods share an address"
    assert any(r["eni_device_index"] > 0 for r in rows), "no pod on a secondary ENI"
    assert any(r["eni_device_index"] == 0 for r in rows), "no pod on a primary ENI"
    secondary = {r["eni"] for r in rows if r["eni_device_index"] > 0}
    primary = {r["eni"] for r in rows if r["eni_device_index"] == 0}
    assert not secondary & primary
    assert len(run.ipamd_pids) == 2
    assert re.search(r"done in \d+\.\ds$", run.err[-1]), run.err[-1]
    assert leftovers(run) == []


def test_the_azure_demo_shows_the_same_table_from_vms_and_ip_configurations(demo_runs: list[DemoRun]) -> None:
    run = DemoRun("--cloud", "azure", "--json")
    demo_runs.append(run)
    assert run.finish() == 0, "\n".join(run.err)
    print("\n".join(run.err))
    rows = [json.loads(line) for line in run.out]
    assert len(rows) == sum(azure_pods_per_node(2)) == 11
    assert {r["instance_type"] for r in rows} == {"Standard_D4s_v5", "Standard_D2s_v5"}
    for row in rows:
        assert row["pod_ip"] == row["remote_saw"], row  # the remote VNet host saw the pod's own address
        assert row["internet_saw"] == row["node_primary_ip"] != row["pod_ip"], row
        assert row["remote_reached_pod"] is True, row
        assert row["eni"].endswith("-nic-0") and row["eni_device_index"] == 0, "an IP configuration of eth0"
    assert len({r["pod_ip"] for r in rows}) == len(rows), "two pods share an address"
    assert any("2 NIC write(s)" in line for line in run.err), "the 9th pod's batch: one more NIC write"
    assert len(run.ipamd_pids) == 2
    assert leftovers(run) == []


def test_keep_stays_up_until_ctrl_c_then_removes_everything_and_exits_0(demo_runs: list[DemoRun]) -> None:
    run = DemoRun("--keep")
    demo_runs.append(run)
    run.wait_for(r"up until Ctrl-C", run.err)
    assert any("REMOTE VPC HOST SAW" in line for line in run.out), run.out
    time.sleep(1.0)
    assert run.proc.poll() is None, "--keep exited by itself"
    up = leftovers(run)
    assert sum(item.startswith("netns ") for item in up) >= 2 + 8, up  # nodes and pods still there
    assert sum(item.startswith("ipamd process") for item in up) == 2, up
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 0, "\n".join(run.err)
    assert leftovers(run) == []


def test_sigterm_while_bringing_it_up_still_removes_everything(demo_runs: list[DemoRun]) -> None:
    run = DemoRun()
    demo_runs.append(run)
    run.wait_for(r"node 1 ready", run.err)
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 130, "\n".join(run.err)
    assert any("interrupted" in line for line in run.err), run.err
    assert run.out == []  # no table: it never got that far
    assert leftovers(run) == []


def test_without_root_it_says_so_in_one_line_and_starts_nothing() -> None:
    before = set(glob.glob("/run/netns/dm*"))
    done = subprocess.run(
        [*NOBODY, *DEMO],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("vpccni demo: error: needs root"), done.stderr
    assert set(glob.glob("/run/netns/dm*")) <= before


def test_bad_options_are_one_line_and_exit_2_before_the_root_check() -> None:
    for args, words in (
        (["--node", "m5.notreal"], "m5.notreal"),
        (["--exit"], "--endpoints"),
        (["--region", "eu-west-1"], "--region"),
        (["--cloud", "azure", "--node", "Standard_Z9"], "Standard_Z9"),
        (["--cloud", "azure", "--endpoints"], "--endpoints"),
        (["--cloud", "gcp"], "--cloud"),
    ):
        done = subprocess.run(
            [*NOBODY, *DEMO, *args],
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ["PATH"]},
        )
        assert done.returncode == 2 and done.stdout == "", done
        assert len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr


# --- what turns traffic into an exit status (pure) ----------------------------------------------------


def row(**changes: Any) -> PodRow:
    good = PodRow(
        pod="default/web-1",
        node="i-1",
        instance_type="m5.large",
        node_primary_ip="10.0.0.5",
        eni="eni-2",
        eni_device_index=1,
        pod_ip="10.0.1.7",
        remote_saw="10.0.1.7",
        internet_saw="10.0.0.5",
        remote_reached_pod=True,
    )
    return dataclasses.replace(good, **changes)


def test_problems_name_each_pod_whose_traffic_was_not_as_on_ec2() -> None:
    assert problems_of([row()]) == []
    assert problems_of([row(remote_saw="10.0.0.5")]) == [
        "the remote VPC host did not see the pod's own address for default/web-1"
    ]
    assert problems_of([row(internet_saw="10.0.1.7")]) == [
        "the internet host did not see the node's primary address for default/web-1"
    ]
    assert problems_of([row(remote_reached_pod=False)]) == [
        "the remote VPC host could not reach default/web-1"
    ]
    assert problems_of([row(eni_device_index=0)]) == ["no pod landed on a secondary ENI"]
    assert problems_of([row(eni_device_index=0)], expect_secondary=False) == [], "Azure: one NIC holds all"


def test_the_node_with_the_smallest_enis_gets_one_pod_more_than_its_primary_eni_holds() -> None:
    # t3.medium: 6 addresses per ENI, 5 of them secondary: the 6th pod spills onto a secondary ENI.
    assert pods_per_node(["m5.large", "t3.medium"]) == [2, 6]
    assert pods_per_node(["t3.medium", "m5.large"]) == [6, 2]


def test_a_failure_is_reported_in_one_line_with_its_reason() -> None:
    failure = RuntimeError("ADD default/web-1 on node-1 failed:\nrc=1\n\nstdout={\"code\": 11}")
    expected = 'RuntimeError: ADD default/web-1 on node-1 failed: | rc=1 | stdout={"code": 11}'
    assert one_line(failure) == expected
    assert len(one_line(RuntimeError("x" * 1000))) == 400
