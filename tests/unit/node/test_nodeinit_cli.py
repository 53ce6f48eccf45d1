"""``vpccni init`` as a subprocess: inputs from the environment, exit status 0 / 1 (a step failed) / 2 (bad
input). Mostly with ``--dev-launcher`` (this machine has no /opt/vpccni/payload; test_nodeinit_payload.py
installs a payload, tests/node the image's). File installation only (``--skip-sysctls``, or a run that fails
before any sysctl): tests/net/node/test_init_sysctls.py sets sysctls inside a network namespace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("portmap", "bandwidth"):
        (src / name).write_text(f"#!/bin/sh\necho {name}\n")
        (src / name).chmod(0o755)
    return src


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    out = tmp_path / "bin"
    out.mkdir()
    return out


def vpccni_init(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VPCCNI_", "HOST_CNI_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "vpccni.cli", "init", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_installs_then_reports_nothing_to_change(bin_dir: Path, source: Path) -> None:
    env = {
        "HOST_CNI_BIN_PATH": str(bin_dir),
        "VPCCNI_CNI_PLUGIN_SOURCE": str(source),
        "VPCCNI_CHAIN_PLUGINS": "portmap,bandwidth",
    }
    first = vpccni_init("--dev-launcher", "--skip-sysctls", **env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"installed {bin_dir}/vpccni",
        f"installed {bin_dir}/portmap",
        f"installed {bin_dir}/bandwidth",
        "vpccni init: 3 changes, 0 already in place",
    ]
    again = vpccni_init("--dev-launcher", "--skip-sysctls", **env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "vpccni init: nothing to change: the node was already initialized"


def test_the_installed_launcher_runs_the_plugin(bin_dir: Path, source: Path) -> None:
    done = vpccni_init(
        "--dev-launcher",
        "--skip-sysctls",
        HOST_CNI_BIN_PATH=str(bin_dir),
        VPCCNI_CNI_PLUGIN_SOURCE=str(source),
    )
    assert done.returncode == 0, done.stderr
    reply = subprocess.run(
        [str(bin_dir / "vpccni")],
        input='{"cniVersion": "1.0.0"}',
        env={"CNI_COMMAND": "VERSION"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert reply.returncode == 0, reply.stderr
    assert "1.1.0" in json.loads(reply.stdout)["supportedVersions"]


def test_default_chain_is_portmap(bin_dir: Path, source: Path) -> None:
    done = vpccni_init(
        "--dev-launcher",
        "--skip-sysctls",
        HOST_CNI_BIN_PATH=str(bin_dir),
        VPCCNI_CNI_PLUGIN_SOURCE=str(source),
    )
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(bin_dir)) == ["portmap", "vpccni"]


def test_an_empty_chain_installs_only_the_launcher(bin_dir: Path, source: Path) -> None:
    done = vpccni_init(
        "--dev-launcher", "--skip-sysctls", HOST_CNI_BIN_PATH=str(bin_dir), VPCCNI_CHAIN_PLUGINS=""
    )
    assert done.returncode == 0, done.stderr
    assert os.listdir(bin_dir) == ["vpccni"]


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"VPCCNI_CHAIN_PLUGINS": "portmap,,tuning"}, (), "VPCCNI_CHAIN_PLUGINS='portmap,,tuning': expected"),
        ({"VPCCNI_CHAIN_PLUGINS": "../evil"}, (), "chained plugin name '../evil'"),
        ({"VPCCNI_CNI_PLUGIN_SOURCE": "relative/dir"}, (), "VPCCNI_CNI_PLUGIN_SOURCE='relative/dir'"),
        ({"HOST_CNI_BIN_PATH": "opt/cni/bin"}, (), "HOST_CNI_BIN_PATH='opt/cni/bin'"),
        ({}, ("--dev-launcher", "--primary-mac", "not-a-mac"), "--primary-mac: 'not-a-mac' is not a MAC"),
        ({}, ("--dev-launcher", "--netns", "../x"), "--netns:"),
        ({}, ("--dev-launcher", "--sysctl-root", "proc/sys"), "--sysctl-root 'proc/sys'"),
        ({}, ("--payload", "payload"), "--payload 'payload': expected an absolute path"),
    ],
)
def test_bad_input_exits_2_naming_it_and_changes_nothing(
    bin_dir: Path, source: Path, env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    full_env = {"HOST_CNI_BIN_PATH": str(bin_dir), "VPCCNI_CNI_PLUGIN_SOURCE": str(source), **env}
    done = vpccni_init(*(args or ("--dev-launcher",)), **full_env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert os.listdir(bin_dir) == []


def test_without_a_payload_it_fails_naming_the_payload(bin_dir: Path) -> None:
    absent = bin_dir.parent / "absent"
    done = vpccni_init("--skip-sysctls", "--payload", str(absent), HOST_CNI_BIN_PATH=str(bin_dir))
    assert done.returncode == 1
    assert f"the plugin payload in {bin_dir.parent}/absent has no executable vpccni" in done.stderr
    assert os.listdir(bin_dir) == []


def test_a_missing_bin_dir_fails_with_1(tmp_path: Path, source: Path) -> None:
    done = vpccni_init(
        "--dev-launcher",
        "--skip-sysctls",
        HOST_CNI_BIN_PATH=str(tmp_path / "absent"),
        VPCCNI_CNI_PLUGIN_SOURCE=str(source),
    )
    assert done.returncode == 1
    assert f"vpccni init: failed: HOST_CNI_BIN_PATH {tmp_path}/absent is not a directory" in done.stderr


def test_a_missing_chained_plugin_fails_with_1(bin_dir: Path, source: Path) -> None:
    done = vpccni_init(
        "--dev-launcher",
        "--skip-sysctls",
        HOST_CNI_BIN_PATH=str(bin_dir),
        VPCCNI_CNI_PLUGIN_SOURCE=str(source),
        VPCCNI_CHAIN_PLUGINS="portmap,tuning",
    )
    assert done.returncode == 1
    assert f"chained plugin 'tuning' not found as an executable file in {source}" in done.stderr
    assert os.listdir(bin_dir) == []


def test_imds_down_fails_with_1_before_anything_changes(bin_dir: Path, source: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = vpccni_init(
        "--dev-launcher",
        HOST_CNI_BIN_PATH=str(bin_dir),
        VPCCNI_CNI_PLUGIN_SOURCE=str(source),
        VPCCNI_IMDS_ENDPOINT=endpoint,
    )
    assert done.returncode == 1
    assert f"cannot read the primary MAC from IMDS at {endpoint}" in done.stderr
    assert os.listdir(bin_dir) == []
