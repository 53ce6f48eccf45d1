"""``vpccni bench rpc`` end to end, briefly: the real CLI starts a real ipamd server process and drives
it. Checks the JSON shape and that every figure is a positive measurement; never judges the times."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "vpccni.cli", "bench"]


def test_rpc_json_reports_positive_figures_next_to_the_fsync_floor() -> None:
    done = subprocess.run([*CLI, "rpc", "--json", "--seconds", "0.5", "--concurrency", "4"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    report = json.loads(lines[0])
    print(lines[0])  # the figures, for whoever reads the test log
    assert report["benchmark"] == "rpc" and report["concurrency"] == 4
    assert report["errors"] == {}
    assert report["rpcs"] > 0 and report["rpcs"] % 2 == 0  # whole ADD+DEL pairs
    assert report["rpcs_per_s"] > 0 and report["seconds"] > 0
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    floor = report["fsync_floor"]
    assert floor["ops_per_s"] > 0 and 0 < floor["latency_ms"]["p50"] <= floor["latency_ms"]["p99"]
    assert report["ratio_to_fsync_floor"] > 0
    server = report["server"]
    # The server saw every measured RPC (plus warm-up) and made each durable through checkpoint writes.
    assert server["commits"] >= report["rpcs"] and 0 < server["checkpoint_writes"] <= server["commits"]
    assert set(report["goal"]) == {"rpcs_per_s", "p99_ms", "met"}
    assert report["machine"]["cpus"] >= 1


@pytest.mark.parametrize("args, words", [
    (["rpc", "--seconds", "0"], "--seconds 0.0"),
    (["rpc", "--concurrency", "0"], "--concurrency 0"),
    (["rpc", "--bogus"], "unrecognized arguments"),
    (["nosuch"], "invalid choice"),
])
def test_bad_arguments_are_one_line_and_status_2(args: list[str], words: str) -> None:
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stdout == ""
