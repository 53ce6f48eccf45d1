"""The plugin's normal path stays light: what it imports, and how long an ADD takes exec-to-exit.

Import hygiene is checked on the installed launcher itself (its text, with one line added to dump
``sys.modules`` after ``main()``): after an ADD only the standard library, ``plugin`` and
``vpccni.wire.protocol``/``vpccni.errors`` are loaded. The same probe after a DEL with ipamd down shows the
fallback's lazily imported netlink modules loaded, which proves the probe sees lazy imports (and that
the fallback, like ADD, needs no pyroute2: it speaks raw rtnetlink).

The timing test prints figures next to floors measured in the same run (a bare interpreter with and
without ``site``); it asserts only that every run succeeded, never a time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import REPO
from tests.libcni import exec_plugin, k8s_args
from tests.net.plugin.test_plugin_harness import FakeIpamd, in_netns, install_plugin, netns, short_tmpdir

PLUGIN_MODULES = {
    "plugin",
    "plugin.main",
    "plugin.cni",
    "plugin.result",
    "plugin.log",
    "plugin.release",
    "plugin.netconf",
}
# All standard-library only.
LIBRARY_MODULES = {
    "vpccni",
    "vpccni.wire",
    "vpccni.wire.client",
    "vpccni.wire.cnicodes",
    "vpccni.wire.protocol",
    "vpccni.errors",
    "vpccni.fsutil",
    "vpccni.wire.wirejson",
    "vpccni.wire.values",
}


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with short_tmpdir() as d:
        yield d


@pytest.fixture(scope="module")
def pod_netns() -> Iterator[str]:
    """The ADD's CNI_NETNS: the plugin opens it to pass it on, so it has to exist."""
    with netns(f"pl7u{os.getpid() % 100000}") as path:
        yield path


@pytest.fixture(scope="module")
def fake(workdir: Path) -> Iterator[FakeIpamd]:
    fake = FakeIpamd(str(workdir / "ipamd.sock")).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def probe(workdir: Path) -> Path:
    """The launcher, with ``sys.modules`` written to ``modules.json`` after main() returns."""
    launcher = install_plugin(workdir / "bin")
    text = launcher.read_text()
    assert text.endswith("sys.exit(main())\n")
    out = str(workdir / "modules.json")
    dump = (
        # sys.modules is listed BEFORE json is imported to write it out.
        f"rc = main()\nmods = sorted(sys.modules)\nopen({out!r}, 'w').write(__import__('json').dumps(mods))\n"
        "sys.exit(rc)\n"
    )
    probe = workdir / "bin" / "probe"
    probe.write_text(text.removesuffix("sys.exit(main())\n") + dump)
    probe.chmod(0o755)
    return probe


def conf(socket: str) -> dict[str, object]:
    return {"cniVersion": "1.0.0", "name": "pl7net", "type": "vpccni", "ipamdSocket": socket}


def loaded_after(workdir: Path, argv: list[str], command: str, stdin: dict[str, object],
                 pod_netns: str) -> set[str]:
    run = exec_plugin(
        argv,
        command,
        stdin,
        container_id="c1",
        netns=pod_netns,
        ifname="eth0",
        args=k8s_args("ns", "p"),
    )
    assert run.returncode == 0, run.describe()
    return set(json.loads((workdir / "modules.json").read_text()))


def test_add_loads_only_the_standard_library_and_the_protocol(
    workdir: Path, fake: FakeIpamd, probe: Path, pod_netns: str
) -> None:
    modules = loaded_after(workdir, [str(probe)], "ADD", conf(fake.socket_path), pod_netns)
    ours = {m for m in modules if m.split(".")[0] in ("plugin", "vpccni")}
    assert ours <= PLUGIN_MODULES | LIBRARY_MODULES, ours - PLUGIN_MODULES - LIBRARY_MODULES
    foreign = (
        {m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"plugin", "vpccni", "__main__"}
    )
    assert foreign == set(), f"third-party modules on the ADD path: {sorted(foreign)}"
    assert not {"pyroute2", "boto3", "botocore", "kubernetes", "logging", "asyncio"} & modules
    # The costly stdlib modules the exec path was rid of (vpccni.wire.wirejson, protocol.Constants, _socket):
    # each one back would add milliseconds to every pod's ADD.
    assert not {"json", "re", "enum", "dataclasses", "typing", "socket", "copy", "collections"} & modules


def test_the_probe_sees_the_lazy_imports_of_the_del_fallback(workdir: Path, probe: Path) -> None:
    pid = os.getpid() % 100000
    prev = {
        "interfaces": [
            {"name": "pl7h9", "mac": "0a:58:0a:00:01:0a"},
            {"name": "eth0", "mac": "0a:58:0a:00:01:0b", "sandbox": "/run/netns/pl7x"},
        ],
        "ips": [{"address": "10.0.1.10/32", "interface": 1}],
    }
    with netns(f"pl7s{pid}"):
        modules = loaded_after(
            workdir,
            in_netns(f"pl7s{pid}", str(probe)),
            "DEL",
            {**conf(str(workdir / "down" / "ipamd.sock")), "prevResult": prev},
            "/run/netns/pl7x",  # gone: a DEL goes on without it
        )
    assert {"plugin.fallback", "vpccni.net.hostroutes", "vpccni.net.rtnl"} <= modules
    assert "pyroute2" not in modules  # a bare host Python can run the fallback too


def _time_ms(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=60)
    elapsed = (time.perf_counter() - start) * 1000
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return elapsed


def test_add_exec_to_exit_time(
    workdir: Path, fake: FakeIpamd, probe: Path, pod_netns: str, capsys: pytest.CaptureFixture[str]
) -> None:
    launcher = workdir / "bin" / "vpccni"
    python = sys.executable
    add_env = {
        "PATH": os.environ.get("PATH", ""),
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "c1",
        "CNI_NETNS": pod_netns,
        "CNI_IFNAME": "eth0",
        "CNI_ARGS": k8s_args("ns", "p"),
    }
    root = str(REPO)
    stdin = json.dumps(conf(fake.socket_path)).encode()
    variants = {
        "floor: python -c pass": ([python, "-c", "pass"], {}, b""),
        "floor: python -I -S -c pass": ([python, "-I", "-S", "-c", "pass"], {}, b""),
        "ADD via installed launcher (-IS)": ([str(launcher)], add_env, stdin),
        "ADD via python -m plugin": ([python, "-m", "plugin"], {**add_env, "PYTHONPATH": root}, stdin),
        "ADD via console script vpccni-cni": ([str(Path(python).parent / "vpccni-cni")], add_env, stdin),
    }
    rounds = 15
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so load changes hit every variant alike
        for name, (argv, env, data) in variants.items():
            samples[name].append(_time_ms(argv, env, data))
    with capsys.disabled():
        print(f"\nplugin exec-to-exit, {rounds} runs each (ms)        p50     p90     min")
        for name, xs in samples.items():
            xs.sort()
            print(
                f"  {name:<40} {statistics.median(xs):7.1f} {xs[int(0.9 * (len(xs) - 1))]:7.1f} {xs[0]:7.1f}"
            )
    assert len(fake.requests) >= 3 * rounds
