"""``vpccni bench add --payload``, briefly: the benchmark installs the image's payload on its emulated node
(the plugin a node runs, not this environment's) and reports figures and floors for it. Never judges the
times; ``make bench-add`` is the full run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.private_podman import PrivatePodman
from tests.net.plugin.test_plugin_harness import short_tmpdir
from tests.node.support import extract_payload

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build


@pytest.fixture(scope="module")
def payload(podman: PrivatePodman, image: str) -> Iterator[Path]:
    with short_tmpdir() as work:
        yield extract_payload(podman, image, work / "payload")


def test_bench_add_times_the_payload_next_to_its_floors(payload: Path) -> None:
    argv = [sys.executable, "-m", "vpccni.cli", "bench", "add", "--json", "--payload", str(payload),
            "--sequential", "5", "--concurrent", "4", "--floor-runs", "3"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["plugin"] == {"kind": "payload", "payload": str(payload)}
    assert report["sequential"]["errors"] == report["concurrent"]["errors"] == {}
    assert report["sequential"]["ipamd_service_ms"]["count"] == 5
    floors = report["floors_ms"]
    assert floors["python_isolated"]["p50"] > 0 and floors["plugin_version"]["p50"] > 0, floors


def test_a_directory_without_a_payload_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vpccni.cli", "bench", "add", "--payload", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"--payload: the plugin payload in {tmp_path} has no executable vpccni" in done.stderr
