"""The plugin payload runs where nothing but the kernel is: a container whose root file system holds only the
payload (no shell, no Python, no libc, no loader), at any path.

Every verb is run against a test double of ipamd (its Unix socket is the plugin's edge; the double listens in
the pytest process, on a socket inside the container's root file system), and the DEL fallback with ipamd
down, which imports the netlink modules lazily: a standard-library module missing from the payload would
show here as a CNI error or a traceback, not on a node. The container has its own network namespace
(podman runs without a network), so the fallback's netlink calls touch only that.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.private_podman import PrivatePodman
from tests.libcni import k8s_args
from tests.net.plugin.test_plugin_harness import FakeIpamd, short_tmpdir
from tests.node.support import extract_payload, run_scratch
from vpccni.wire.protocol import SPOOL_DIRNAME

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build

BIN = "/opt/cni/bin"
ELSEWHERE = "/var/lib/somewhere/else/bin"  # HOST_CNI_BIN_PATH is not fixed: nothing may depend on it
SOCKET = "/sock/ipamd.sock"
DOWN = "/sock/down/ipamd.sock"  # no ipamd here: DEL falls back
LOG = "/log/plugin.log"


@pytest.fixture(scope="module")
def rootfs(podman: PrivatePodman, image: str) -> Iterator[Path]:
    """A root file system with the payload in two bin dirs, a socket dir, a log dir; nothing else."""
    with short_tmpdir() as work:
        root = work / "root"
        extract_payload(podman, image, root / BIN.lstrip("/"))
        shutil.copytree(root / BIN.lstrip("/"), root / ELSEWHERE.lstrip("/"), symlinks=True)
        for directory in ("sock/down", "log"):
            (root / directory).mkdir(parents=True)
        yield root


@pytest.fixture(scope="module")
def ipamd(rootfs: Path) -> Iterator[FakeIpamd]:
    fake = FakeIpamd(str(rootfs / SOCKET.lstrip("/"))).start()
    try:
        yield fake
    finally:
        fake.stop()


def conf(socket: str = SOCKET, log: str = LOG, **extra: object) -> bytes:
    body = {"cniVersion": "1.1.0", "name": "pl7node", "type": "vpccni", "ipamdSocket": socket,
            "pluginLogFile": log, "pluginLogLevel": "debug", **extra}
    return json.dumps(body).encode()


def plugin(podman: PrivatePodman, rootfs: Path, env: dict[str, str], stdin: bytes = b"", bin_dir: str = BIN,
           cap_add: tuple[str, ...] = ()) -> subprocess.CompletedProcess[bytes]:
    """The payload's launcher in the scratch container; a Python traceback anywhere fails the test."""
    done = run_scratch(podman, rootfs, [f"{bin_dir}/vpccni"], env, stdin, cap_add)
    assert b"Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def cni_env(command: str) -> dict[str, str]:
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/proc/1/ns/net",
            "CNI_IFNAME": "eth0", "CNI_ARGS": k8s_args("ns", "pod"), "CNI_PATH": BIN}


def test_the_root_file_system_has_no_shell_no_python_and_no_libc(rootfs: Path) -> None:
    assert sorted(p.name for p in rootfs.iterdir()) >= ["log", "opt", "sock", "var"]
    for absent in ("bin", "sbin", "usr", "lib", "lib64", "etc/ld.so.cache"):
        assert not (rootfs / absent).exists(), absent


@pytest.mark.parametrize("bin_dir", [BIN, ELSEWHERE])
def test_version_runs_with_nothing_but_the_payload(podman: PrivatePodman, rootfs: Path, bin_dir: str) -> None:
    done = plugin(podman, rootfs, {"CNI_COMMAND": "VERSION"}, bin_dir=bin_dir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["supportedVersions"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    assert done.stderr == b""


def test_the_hosts_environment_cannot_redirect_the_payload(podman: PrivatePodman, rootfs: Path) -> None:
    # The runtime passes its own environment through: none of it may point the loader or Python elsewhere.
    hostile = {"PYTHONHOME": "/nowhere", "PYTHONPATH": "/nowhere", "PYTHONSTARTUP": "/nowhere",
               "LD_LIBRARY_PATH": "/nowhere", "LANG": "de_DE.ISO-8859-1", "LC_ALL": "xx_YY.UTF-8"}
    done = plugin(podman, rootfs, {"CNI_COMMAND": "VERSION", **hostile})
    assert done.returncode == 0 and done.stderr == b"", done.stdout + done.stderr
    assert "1.1.0" in json.loads(done.stdout)["supportedVersions"]


def test_a_malformed_add_prints_a_cni_decode_error(podman: PrivatePodman, rootfs: Path) -> None:
    done = plugin(podman, rootfs, cni_env("ADD"), b'{"cniVersion": "1.0.0", ')
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)
    assert error["code"] == 6 and "cannot decode the network configuration" in error["msg"], error


def test_every_verb_against_ipamd(podman: PrivatePodman, rootfs: Path, ipamd: FakeIpamd) -> None:
    add = plugin(podman, rootfs, cni_env("ADD"), conf())
    assert add.returncode == 0, add.stdout + add.stderr
    result = json.loads(add.stdout)
    assert result["ips"][0]["address"] == "10.0.1.10/32", result
    keep = {"cni.dev/valid-attachments": [{"containerID": "c0ffee", "ifname": "eth0"}]}
    for command, extra in (("CHECK", {"prevResult": result}), ("DEL", {}), ("GC", keep), ("STATUS", {})):
        done = plugin(podman, rootfs, cni_env(command), conf(**extra))
        assert (done.returncode, done.stdout) == (0, b""), (command, done.stdout + done.stderr)
    assert ipamd.ops == ["ADD", "CHECK", "DEL", "GC", "STATUS"]


def test_add_with_ipamd_down_is_a_cni_try_again_error(podman: PrivatePodman, rootfs: Path) -> None:
    done = plugin(podman, rootfs, cni_env("ADD"), conf(DOWN))
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["code"] == 11 and "not reachable" in error["msg"], error


def test_del_with_ipamd_down_falls_back_in_the_container_netns(podman: PrivatePodman, rootfs: Path) -> None:
    prev = {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "pl7h9", "mac": "0a:58:0a:00:01:0a"},
                       {"name": "eth0", "mac": "0a:58:0a:00:01:0b", "sandbox": "/proc/1/ns/net"}],
        "ips": [{"address": "10.0.1.10/32", "interface": 1}],
    }
    # NET_ADMIN in the container's own network namespace: the fallback's rule and route deletes run there.
    done = plugin(podman, rootfs, cni_env("DEL"), conf(DOWN, "/log/fallback.log", prevResult=prev),
                  cap_add=("NET_ADMIN",))
    assert (done.returncode, done.stdout) == (0, b""), done.stdout + done.stderr
    records = list((rootfs / Path(DOWN).parent.relative_to("/") / SPOOL_DIRNAME).iterdir())
    assert [r.name for r in records] == ["pl7node--c0ffee--eth0.json"]
    log = (rootfs / "log" / "fallback.log").read_text()
    assert "release record written" in log, log
    # The lazily imported netlink modules loaded and ran: no import error, no failed teardown.
    assert "ERROR" not in log and "could not remove host routing" not in log, log


@pytest.mark.parametrize("name", ["portmap", "bandwidth", "tuning", "loopback"])
def test_a_link_named_after_a_chained_plugin_runs_that_plugin(
    podman: PrivatePodman, rootfs: Path, name: str
) -> None:
    link = rootfs / BIN.lstrip("/") / name
    link.symlink_to("vpccni")  # as init may install it; the launcher goes by the name it was run by
    try:
        done = run_scratch(podman, rootfs, [f"{BIN}/{name}"], {"CNI_COMMAND": "VERSION"})
    finally:
        link.unlink()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1.0.0" in json.loads(done.stdout)["supportedVersions"]


def test_a_name_the_payload_does_not_carry_is_a_cni_error(podman: PrivatePodman, rootfs: Path) -> None:
    link = rootfs / BIN.lstrip("/") / "bridge"
    link.symlink_to("vpccni")
    try:
        done = run_scratch(podman, rootfs, [f"{BIN}/bridge"], {"CNI_COMMAND": "VERSION"})
    finally:
        link.unlink()
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert (error["code"], error["msg"]) == (999, "vpccni launcher: the payload has no plugin of this name")


def test_a_launcher_without_its_tree_prints_a_cni_error(podman: PrivatePodman, rootfs: Path) -> None:
    lone = rootfs / "lone"
    lone.mkdir()
    shutil.copy2(rootfs / BIN.lstrip("/") / "vpccni", lone / "vpccni")
    done = plugin(podman, rootfs, {"CNI_COMMAND": "VERSION"}, bin_dir="/lone")
    assert done.returncode == 1
    error = json.loads(done.stdout)
    assert error["code"] == 999 and error["msg"] == "vpccni launcher: the payload is not installed", error
    assert error["details"] == "/lone/vpccni.d/current: No such file or directory"
