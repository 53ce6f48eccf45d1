"""ipamd as a process: a bad variable stops it before anything happens (exit 2, one line per problem),
SIGTERM stops it cleanly without giving anything back to EC2 (pods keep their addresses across an
ipamd restart or upgrade), and DELs the plugin spooled are replayed at start and while running.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ipamd.state.checkpoint import load_checkpoint
from tests.cloud.ipamd.ipamd_harness import NETWORK, Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.wire.protocol import Op, Request, encode_release_record, release_record_name, spool_dir_for

__all__ = ["ipamd_cloud", "run_ipamd"]


def run_ipamd_with(env_overrides: dict[str, str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ipamd"], env={**env, **env_overrides}, capture_output=True,
                          text=True, timeout=30)


def test_bad_variables_exit_2_with_one_line_each(run_ipamd):
    ipamd = run_ipamd("t3.small", start=False)
    done = run_ipamd_with({"WARM_IP_TARGET": "-1", "MAX_ENI": "zero", "VPCCNI_TEST_CRASH_AT": "nowhere:1"},
                          ipamd.env())
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # the settings first; the test-only variable is not reached
    assert lines[0].startswith("vpccni-ipamd: WARM_IP_TARGET='-1': expected")
    assert lines[1].startswith("vpccni-ipamd: MAX_ENI='zero': expected")
    assert done.stdout == ""
    assert not os.path.exists(ipamd.paths.socket) and not os.path.exists(ipamd.paths.checkpoint)

    done = run_ipamd_with({"VPCCNI_TEST_CRASH_AT": "nowhere:1"}, ipamd.env())
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("vpccni-ipamd: VPCCNI_TEST_CRASH_AT='nowhere:1': expected")


def test_sigterm_stops_cleanly_and_releases_nothing(run_ipamd):
    ipamd = run_ipamd("m5.large")
    held = {f"p{n}": ipamd.add_ok(f"p{n}") for n in range(12)}
    wait_until("the pool to settle", ipamd.pool_settled)
    before = ipamd.ec2_cidrs()
    assert ipamd.stop() == 0, ipamd.log()
    assert ipamd.ec2_cidrs() == before, "nothing given back to EC2 on a clean stop"
    assert not os.path.exists(ipamd.paths.socket), "the socket is removed"
    saved = load_checkpoint(ipamd.paths.checkpoint)
    assert saved is not None and {a.key.container_id: a.address for a in saved.allocations} == held

    ipamd.start()
    assert ipamd.datastore_cidrs() == before
    assert {cid: ipamd.add_ok(cid) for cid in held} == held, "every pod keeps its address across a restart"


def test_startup_metrics_are_recorded(run_ipamd):
    ipamd = run_ipamd("t3.small")
    wait_until("the pool to settle", ipamd.pool_settled)
    metrics = ipamd.metrics()
    labels = 'failure_reason="",success="true",with_api_server="false"'
    assert f"awscni_ipamd_startup_duration_seconds_count{{{labels}}} 1" in metrics
    assert 'awscni_ipamd_node_initialization_duration_seconds_count{success="true"} 1' in metrics
    assert "awscni_eni_max 3\n" in metrics and "awscni_ip_max 9\n" in metrics
    assert 'vpccni_api_budget_tokens{action_class="mutating"}' in metrics


def spool_release(ipamd: Ipamd, cid: str) -> str:
    """What the plugin leaves when ipamd cannot take a DEL (plugin.release, written the same way)."""
    spool = spool_dir_for(ipamd.paths.socket)
    os.makedirs(spool, mode=0o700, exist_ok=True)
    path = os.path.join(spool, release_record_name(NETWORK, cid, "eth0"))
    with open(path, "wb") as f:
        f.write(encode_release_record(Request(op=Op.DEL, network=NETWORK, container_id=cid, ifname="eth0")))
    return path


def test_release_records_are_replayed_at_start_and_while_running(run_ipamd):
    ipamd = run_ipamd("t3.small")
    ipamd.add_ok("a")
    ipamd.add_ok("b")
    assert ipamd.stop() == 0
    at_start = spool_release(ipamd, "a")  # DEL while ipamd was down
    ipamd.start()
    assert not os.path.exists(at_start), "replayed before ready"
    assert ipamd.pool()["totals"]["assigned"] == 1
    while_running = spool_release(ipamd, "b")  # a DEL the plugin could not deliver in time
    wait_until("the running ipamd to replay it", lambda: not os.path.exists(while_running))
    assert ipamd.pool()["totals"]["assigned"] == 0
