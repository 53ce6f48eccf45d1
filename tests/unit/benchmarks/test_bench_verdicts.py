"""Honest verdicts: a failed operation is counted in the figures and a goal is never met when one failed
(add: failed ADDs stay in the latency sample; rpc: an error reply is no RPC served; churn: a pod without an
address or an ADD error fails the run's goal); a burst is timed from its common start."""

from __future__ import annotations

import json
import sys
from typing import Any

from vpccni.benchmarks import add, add_phases, churn, rpc
from vpccni.benchmarks.churn_trace import PodLife
from vpccni.benchmarks.floors import Floor
from vpccni.benchmarks.stats import LatencySummary

FLOORS = {name: LatencySummary.of([0.001]) for name in (
    "python_isolated", "python_site", "python_isolated_plugin_imports", "veth_add", "veth_add_del",
    "rpc_add_no_plumbing")}
BURST = {name: {"latency_ms": LatencySummary.of([0.01]).as_ms(), "all_done_ms": 10.0,
                "cpu_ms": LatencySummary.of([0.005]).as_ms()}
         for name in ("python_isolated", "python_isolated_plugin_imports")}
FAILED = json.dumps({"cniVersion": "1.1.0", "code": 11, "msg": "no free address"})


def _exec(seconds: float, ok: bool = True) -> add_phases.ExecResult:
    return add_phases.ExecResult(seconds, 0.001, 0 if ok else 1, "{}" if ok else FAILED)


def _add_report(seq: list[add_phases.ExecResult], conc: list[add_phases.ExecResult]) -> dict[str, Any]:
    return add.report("m5.xlarge", 32, {"MINIMUM_IP_TARGET": "32", "WARM_IP_TARGET": "2"},
                      add.Phase(results=seq), add.Phase(results=conc, all_done_s=0.1), FLOORS, BURST,
                      {"kind": "python", "payload": ""})


def test_a_failed_add_stays_in_the_latencies_and_fails_the_goal() -> None:
    fast = [_exec(0.010) for _ in range(99)]
    report = _add_report([*fast, _exec(5.0, ok=False)], [_exec(0.1)])
    seq = report["sequential"]
    assert seq["latency_ms"]["max"] == 5000.0 and seq["latency_ms"]["p99"] == 10.0
    assert seq["errors"] == {"code 11: no free address": 1}
    assert report["goal"]["met"]["sequential_p50"] is False, "10 ms p50 but an ADD failed: not met"
    assert report["goal"]["met"]["concurrent_p50"] is True
    clean = _add_report(fast, [_exec(0.1)])
    assert clean["goal"]["met"]["sequential_p50"] is True


def test_a_burst_is_timed_from_the_common_start(tmp_path) -> None:
    """A thread that spawns its exec late has waited all the same: its latency counts from the barrier."""
    done = add_phases.burst("/proc/self/ns/net", [sys.executable, "-c", "pass"],
                            [add_phases.PluginCall({}, b"")] * 3)
    assert all(0 < r.seconds <= done.all_done_s for r in done.results)
    assert max(r.seconds for r in done.results) == done.all_done_s or \
        abs(max(r.seconds for r in done.results) - done.all_done_s) < 0.05


def test_an_error_reply_is_not_a_fast_rpc() -> None:
    tally = rpc._ClientTally(latencies=[0.001] * 10, errors={"no_ip": 5})
    report = rpc._report(1, tally, 1.0, Floor(1000.0, LatencySummary.of([0.001])), {}, {"server": 0.0,
                                                                                       "client": 0.0})
    assert report["rpcs"] == 10 and report["rpcs_per_s"] == 10.0, "the 5 error replies are not counted"
    assert report["goal"]["met"] is False


def _churn_run(name: str, failed: int = 0, errors: dict[str, int] | None = None) -> dict[str, Any]:
    """One mutating call for 100 pods: 10 per 1,000, within the goal."""
    tally = churn.Tally(attempts=100 + failed, failed_for_good=failed, errors=errors or {})
    trace = [PodLife(f"p{n}", n, 20) for n in range(100)]
    return churn._result(name, {}, trace, {"AssignPrivateIpAddresses": {"calls": 1, "throttled": 0,
                                                                         "errors": 0}}, tally, 1.0)


def test_a_churn_run_with_a_failed_operation_never_meets_the_goal() -> None:
    clean = [_churn_run("vpccni defaults"), _churn_run("WARM_IP_TARGET=2")]
    assert clean[0]["mutating_per_1000_pods"] == 10.0 and churn.goal(clean)["met"] is True
    for broken in ([_churn_run("vpccni defaults", failed=2)],
                   [_churn_run("vpccni defaults"), _churn_run("x", errors={"internal": 1})]):
        verdict = churn.goal(broken)
        assert verdict["met"] is False and verdict["runs_with_failures"]
