"""Shared pieces of the node tests (no tests here): the image, containers with nothing in them, host state.

Containers run with :mod:`scripts.private_podman` (private configuration and storage, no network, a private
mount namespace per command), are labelled and removed after use, and a session-end sweep removes any a
killed test left. A "scratch" container's root file system is a directory the test fills: no shell, no
Python, no libc -- only what the test put there (and podman's /etc/hosts, /proc, /dev ... mount points).
"""

from __future__ import annotations

import contextlib
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from scripts.extract_payload import PAYLOAD_IN_IMAGE
from scripts.extract_payload import extract_payload as scripts_extract_payload
from scripts.private_podman import PrivatePodman
from tests import REPO

LABEL = "vpccni-test=node"
__all__ = ["LABEL", "PAYLOAD_IN_IMAGE", "extract_payload", "host_unchanged", "image_ref", "run_scratch",
           "sweep"]


def image_ref() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return f"localhost/vpccni:{line.split(chr(34))[1]}"
    raise AssertionError("no version in pyproject.toml")


def run_in_image(pm: PrivatePodman, image: str, *argv: str) -> subprocess.CompletedProcess[bytes]:
    return pm.run("run", "--rm", "--pull=never", "--label", LABEL, "--name", _name(), image, *argv,
                  check=False, timeout=300)


def extract_payload(pm: PrivatePodman, image: str, dest: Path) -> Path:
    """Copy the image's payload into ``dest`` (created), symlink and modes kept; returns ``dest``."""
    return scripts_extract_payload(pm, image, dest, LABEL)


def run_scratch(
    pm: PrivatePodman,
    rootfs: Path,
    argv: Sequence[str],
    env: Mapping[str, str],
    stdin: bytes = b"",
    cap_add: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    """``argv`` in a container whose root file system is ``rootfs``, with ``env`` and ``stdin``."""
    options = ["run", "--rm", "-i", "--label", LABEL, "--name", _name()]
    for key, value in env.items():
        options += ["--env", f"{key}={value}"]
    for cap in cap_add:
        options += ["--cap-add", cap]
    return pm.run(*options, "--rootfs", str(rootfs), *argv, input=stdin, check=False, timeout=120)


def sweep(pm: PrivatePodman) -> None:
    """Remove every container a test of ours left (a test killed while podman ran)."""
    listed = pm.run("ps", "--all", "--quiet", "--filter", f"label={LABEL}", check=False).stdout.split()
    for container in listed:
        pm.run("rm", "--force", container.decode(), check=False)


def _name() -> str:
    return f"pl7node-{uuid.uuid4().hex[:12]}"


# --- the host must look the same after the tests -------------------------------------------------------

_COUNTERS = re.compile(r"\[\d+:\d+\]")
# Where a podman without our configuration would leave something behind.
_PODMAN_TRACES = ("/run/crun", "/run/containers", "/run/libpod", "/run/mount", "/var/lib/containers",
                  "/dev/shm/libpod_lock", "/var/lib/cni")


def host_state() -> dict[str, str]:
    """What the node tests must not change in the root namespace (iptables, rules, links, routes, net.ipv4
    sysctls) and the host's file system (podman's default state paths, the host's CNI configuration)."""
    def out(*argv: str) -> str:
        return subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout

    iptables = "\n".join(_COUNTERS.sub("[0:0]", line) for line in out("iptables-save").splitlines()
                         if not line.startswith("#"))
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forward = f.read().strip()
    traces = " ".join(p for p in _PODMAN_TRACES if Path(p).exists())
    cni_conf = " ".join(sorted(p.name for p in Path("/etc/cni/net.d").glob("*"))) if Path(
        "/etc/cni/net.d").is_dir() else ""
    return {"iptables-save": iptables, "ip rule": out("ip", "rule"), "ip link": out("ip", "-o", "link"),
            "ip route": out("ip", "route", "show", "table", "all"), "ip_forward": forward,
            "net.ipv4 sysctls": _ipv4_sysctls(), "podman traces": traces, "/etc/cni/net.d": cni_conf}


def _ipv4_sysctls() -> str:
    """Every readable net.ipv4 sysctl of the root namespace: the top level and each interface's."""
    base = Path("/proc/sys/net/ipv4")
    lines = []
    for path in sorted([*base.glob("*"), *base.glob("conf/*/*")]):
        if path.is_file():
            with contextlib.suppress(OSError):
                lines.append(f"{path.relative_to(base)}={path.read_text().strip()}")
    return "\n".join(lines)


@contextlib.contextmanager
def host_unchanged() -> Iterator[None]:
    """Fails (after the block, even when it failed) naming what changed on the host."""
    before = host_state()
    yield
    after = host_state()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"the node tests changed the host: {changed}"
