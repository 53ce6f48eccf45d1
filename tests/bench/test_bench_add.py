"""``vpccni bench add`` end to end, briefly: the real CLI brings up one emulated node with ipamd, execs
the installed plugin (here the development launcher: tests/node runs it with the image's payload), and
prints figures next to floors. Checks the JSON shape, that every figure is a
positive measurement, that ipamd's own histogram counted exactly the timed ADDs, and that nothing is left
behind; never judges the times. Needs root (network namespaces), except the refusal without it."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "vpccni.cli", "bench"]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
FLOORS = ("python_isolated", "python_isolated_plugin_imports", "plugin_version", "veth_add", "veth_add_del",
          "rpc_add_no_plumbing")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)")


def ours() -> set[str]:
    return set(glob.glob("/run/netns/ba*")) | set(glob.glob("/tmp/ba*-cluster-*"))


def positive_latency(lat: dict[str, float]) -> None:
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"], lat
    assert lat["mean"] > 0, lat


@needs_root
def test_add_json_reports_positive_figures_next_to_floors_and_leaves_nothing() -> None:
    before = ours()
    done = subprocess.run([*CLI, "add", "--json", "--dev-launcher", "--sequential", "5", "--concurrent", "4",
                           "--floor-runs", "3"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "--json prints exactly one JSON object"
    print(lines[0])  # the figures, for whoever reads the test log
    report = json.loads(lines[0])
    assert report["benchmark"] == "add"
    assert report["plugin"] == {"kind": "development launcher", "payload": ""}
    assert report["node"]["instance_type"] == "m5.xlarge"
    assert report["node"]["free_addresses_before"] >= 4 + 2
    for phase, adds in (("sequential", 5), ("concurrent", 4)):
        figures = report[phase]
        assert figures["adds"] == adds and figures["errors"] == {}, figures
        positive_latency(figures["latency_ms"])
        positive_latency(figures["plugin_cpu_ms"])
        # ipamd's histogram moved by exactly this phase's ADDs (the untimed DELs are not in it).
        assert figures["ipamd_service_ms"]["count"] == adds, figures
        assert figures["ipamd_service_ms"]["mean"] > 0
        assert figures["ipamd_cpu_ms_per_add"] >= 0
    assert report["concurrent"]["all_done_ms"] > 0
    assert set(report["floors_ms"]) == set(FLOORS)
    for name in FLOORS:
        positive_latency(report["floors_ms"][name])
    bursts = report["burst_floors"]
    assert bursts["count"] == 4
    for name in ("python_isolated", "python_isolated_plugin_imports"):
        positive_latency(bursts[name]["latency_ms"])
        positive_latency(bursts[name]["cpu_ms"])
        assert bursts[name]["all_done_ms"] > 0
    assert set(report["breakdown_sequential_p50_ms"]) >= {"plugin_cpu", "ipamd_service", "rest"}
    assert set(report["goal"]["met"]) == {"sequential_p50", "sequential_p99", "concurrent_p50"}
    assert report["goal"]["aws_concurrent_p50_ms"] == 750.0
    assert report["machine"]["cpus"] >= 1
    assert ours() <= before, f"left behind: {ours() - before}"


def test_without_root_it_refuses_in_one_line() -> None:
    done = subprocess.run([*NOBODY, *CLI, "add"], cwd="/", capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"]})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "vpccni bench add: error: needs root: it creates network namespaces and runs " \
                          "ipamd in one\n"


@pytest.mark.parametrize("args, words", [
    (["--sequential", "0"], "--sequential 0"),
    (["--concurrent", "0"], "--concurrent 0"),
    (["--concurrent", "200", "--instance-type", "m5.large"], "--concurrent 200: expected 1-25 on m5.large"),
    (["--instance-type", "m5.notreal"], "m5.notreal"),
    (["--floor-runs", "0"], "--floor-runs 0"),
    (["--bogus"], "unrecognized arguments"),
    (["--payload", "/x", "--dev-launcher"], "not allowed with argument"),
])
def test_bad_arguments_are_one_line_and_status_2(args: list[str], words: str) -> None:
    done = subprocess.run([*CLI, "add", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert done.stdout == ""
