"""``vpccni bench churn`` end to end, briefly: the real CLI starts a local cloud and an ipamd process per
setting and replays a short seeded trace. Checks the JSON's shape and that its figures agree with each
other; never judges times."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

CLI = [sys.executable, "-m", "vpccni.cli", "bench"]
PODS = 60


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    done = subprocess.run([*CLI, "churn", "--json", "--pods", str(PODS), "--scale", "200", "--seed", "7"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    print(lines[0])  # the figures, for whoever reads the test log
    parsed: dict[str, Any] = json.loads(lines[0])
    return parsed


def test_both_settings_replay_the_whole_trace(report):
    assert report["benchmark"] == "churn" and report["pods"] == PODS and report["seed"] == 7
    assert [run["name"] for run in report["runs"]] == [
        "vpccni defaults", "aws-node's shrink (VPCCNI_SHRINK=aws)", "WARM_IP_TARGET=2"]
    assert report["runs"][1]["settings"] == {"VPCCNI_SHRINK": "aws"}
    assert report["runs"][2]["settings"] == {"WARM_IP_TARGET": "2"}
    assert report["concurrency"]["peak"] >= report["concurrency"]["mean"] / 2
    for run in report["runs"]:
        adds = run["adds"]
        assert adds["pods"] == PODS and run["dels"] == PODS, "every pod arrived and left"
        assert adds["errors"] == {} and adds["failed_for_good"] == 0
        assert adds["attempts"] == PODS + adds["no_ip"], "one successful ADD per pod, plus the refused ones"
        assert adds["pods_waited"] <= adds["no_ip"]


def test_the_figures_add_up(report):
    for run in report["runs"]:
        calls = run["ec2_calls"]
        assert calls["AssignPrivateIpAddresses"]["calls"] >= 1, "ipamd's start is counted"
        mutating = sum(c["calls"] for action, c in calls.items() if not action.startswith("Describe"))
        assert run["mutating_calls"] == mutating
        assert run["mutating_per_1000_pods"] == round(mutating * 1000 / PODS, 2)
        assert run["calls_total"] == sum(c["calls"] for c in calls.values())
        assert run["throttled_calls"] == sum(c["throttled"] for c in calls.values())
        creates = calls.get("CreateNetworkInterface", {"calls": 0})["calls"]
        assert calls.get("AttachNetworkInterface", {"calls": 0})["calls"] <= creates
        idle = run["idle_addresses"]
        assert idle["samples"] > 0 and 0 <= idle["mean"] <= idle["max"]
    goal = report["goal"]
    defaults = report["runs"][0]["mutating_per_1000_pods"]
    assert goal["runs_with_failures"] == []
    assert goal["met"] == (defaults <= goal["mutating_per_1000_pods_with_defaults"])
    assert report["time_scale"]["ipamd_timers"]["VPCCNI_POOL_LOOP_PERIOD"] == "0.025", "5 s / 200"


def test_the_trade_off_goes_the_documented_way(report):
    defaults, _, warm_ip = report["runs"]
    # WARM_ENI_TARGET=1 keeps a whole ENI of addresses idle; WARM_IP_TARGET=2 keeps few and pays in calls.
    assert warm_ip["idle_addresses"]["mean"] < defaults["idle_addresses"]["mean"]
    assert defaults["ec2_calls"].get("AssignPrivateIpAddresses", {}).get("calls", 0) <= \
        warm_ip["ec2_calls"]["AssignPrivateIpAddresses"]["calls"]


@pytest.mark.parametrize("args, words", [
    (["churn", "--pods", "0"], "--pods 0"),
    (["churn", "--scale", "5000"], "--scale 5000"),
    (["churn", "--instance-type", "m9.huge"], "m9.huge"),
])
def test_bad_arguments_are_one_line_and_status_2(args: list[str], words: str) -> None:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stdout == ""
