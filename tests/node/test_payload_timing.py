"""How long the payload takes, exec to exit, beside floors measured in the same run; prints, asserts no time.

Run on this host (not in a container, whose start would dominate): the payload's launcher, its loader and
interpreter, against the development launcher (the host's python3 -IS running the repository's plugin)
and a bare host interpreter. ADD goes to a test double of ipamd, so the figures are the plugin's own cost.
Sequential runs are interleaved (load changes hit every variant alike); then 30 ADDs at once, as a node
starting 30 pods would exec them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts.private_podman import PrivatePodman
from tests.libcni import k8s_args
from tests.net.plugin.test_plugin_harness import FakeIpamd, short_tmpdir
from tests.node.support import extract_payload
from vpccni.node import launcher as cni_install
from vpccni.node import payload

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build

HOST_PYTHON = "/usr/bin/python3"  # Debian's 3.11: what the development launcher runs here
ROUNDS = 30
CONCURRENT = 30
CONCURRENT_ROUNDS = 5  # alternating, pooled: one burst of 30 on 2 cores is mostly scheduling noise


@pytest.fixture(scope="module")
def work(podman: PrivatePodman, image: str) -> Iterator[Path]:
    with short_tmpdir() as work:
        extract_payload(podman, image, work / "payload")
        cni_install.install_launcher(str(work / "dev"), python=os.path.realpath(HOST_PYTHON))
        yield work


@pytest.fixture(scope="module")
def ipamd(work: Path) -> Iterator[FakeIpamd]:
    fake = FakeIpamd(str(work / "ipamd.sock")).start()
    # socketserver listens with a backlog of 5; 30 plugins connecting at once would see EAGAIN, which
    # ipamd's own server (asyncio's default backlog of 100) never gives them. listen() again raises it.
    assert fake._server is not None
    fake._server.socket.listen(4 * CONCURRENT)
    try:
        yield fake
    finally:
        fake.stop()


def _exec_ms(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=60)
    elapsed = (time.perf_counter() - start) * 1000
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stdout + done.stderr
    return elapsed


def _row(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    return f"  {name:<52} {statistics.median(xs):7.1f} {xs[int(0.9 * (len(xs) - 1))]:7.1f} {xs[0]:7.1f}"


def test_exec_to_exit_times(work: Path, ipamd: FakeIpamd, capsys: pytest.CaptureFixture[str]) -> None:
    tree = os.path.realpath(work / "payload" / payload.TREES / payload.CURRENT)
    via_loader = [f"{tree}/{payload.LOADER}", "--library-path", f"{tree}/lib",
                  f"{tree}/{payload.INTERPRETER}"]
    conf = json.dumps({"cniVersion": "1.1.0", "name": "pl7time", "type": "vpccni",
                       "ipamdSocket": ipamd.socket_path}).encode()
    add = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/proc/self/ns/net",
           "CNI_IFNAME": "eth0", "CNI_ARGS": k8s_args("ns", "p"), "CNI_PATH": "/opt/cni/bin"}
    version = {"CNI_COMMAND": "VERSION"}
    variants: dict[str, tuple[list[str], dict[str, str], bytes]] = {
        f"floor: host {HOST_PYTHON} -I -S -c pass": ([HOST_PYTHON, "-I", "-S", "-c", "pass"], {}, b""),
        "floor: payload interpreter -I -S -c pass": ([*via_loader, "-I", "-S", "-c", "pass"], {}, b""),
        "floor: payload interpreter, launcher flags, -c pass": (
            [*via_loader, *payload.PYTHON_FLAGS, "-c", "pass"], {}, b""),
        "VERSION: payload (static launcher)": ([str(work / "payload" / "vpccni")], version, b""),
        "VERSION: development launcher (host python3 -IS)": ([str(work / "dev" / "vpccni")], version, b""),
        "ADD: payload": ([str(work / "payload" / "vpccni")], add, conf),
        "ADD: development launcher": ([str(work / "dev" / "vpccni")], add, conf),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, (argv, env, stdin) in variants.items():
            samples[name].append(_exec_ms(argv, env, stdin))
    bursts = ("ADD: payload", "ADD: development launcher")
    concurrent: dict[str, list[float]] = {f"{name}, {CONCURRENT} at once": [] for name in bursts}
    for _ in range(CONCURRENT_ROUNDS):
        for name in bursts:
            with ThreadPoolExecutor(CONCURRENT) as pool:
                runs = [pool.submit(_exec_ms, *variants[name]) for _ in range(CONCURRENT)]
                concurrent[f"{name}, {CONCURRENT} at once"] += [run.result() for run in runs]
    size = sum(f.stat().st_size for f in (work / "payload").rglob("*") if f.is_file() and not f.is_symlink())
    with capsys.disabled():
        print(f"\npayload {size / 1e6:.1f} MB; exec-to-exit (ms), {ROUNDS} runs, {CONCURRENT_ROUNDS} bursts"
              f"{'':<4} p50     p90     min")
        for name, xs in (samples | concurrent).items():
            print(_row(name, xs))
    assert len(ipamd.requests) == 2 * (ROUNDS + CONCURRENT * CONCURRENT_ROUNDS)
