"""Podman on a shared machine without changing it: private configuration, storage and state.

``make image`` and the node tests run podman as root on machines other work shares. Podman's defaults would
change the host: its default bridge network writes firewall rules and ``ip_forward=1`` into the root network
namespace, its storage and state live under ``/var/lib/containers`` and ``/run``, its locks in ``/dev/shm``.
So every podman command here runs

* with its own containers.conf, storage.conf and registries.conf (``CONTAINERS_*`` variables; nothing under
  ``/etc/containers`` is read for them or changed): no network (``netns = "none"``), no cgroups (crun
  cannot use this machine's hybrid layout), file locks, ulimits within this machine's hard limit, no
  registry to pull from (``--pull=never`` everywhere);
* in a private mount namespace (``unshare -m --propagation slave``) where ``/run`` and ``/var/lib`` are
  fresh tmpfs, so what crun and buildah write there (``/run/crun``, the blob-info cache under
  ``/var/lib/containers``) vanishes with the command, and the cgroup v2 mount that makes crun refuse the
  hybrid layout is unmounted -- for that command only.

Images and layers persist under ``root`` (default ``/var/tmp/vpccni-podman``, or VPCCNI_PODMAN_ROOT), so a
second ``make image`` and the tests reuse the base root filesystem and the built image (storage driver
overlay, or VPCCNI_PODMAN_DRIVER=vfs where overlay cannot work). The configuration
files are written to a temporary directory per session and removed after it; a lock on ``root`` serialises
sessions (a test run and a ``make image`` at the same time).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

DEFAULT_ROOT = Path(os.environ.get("VPCCNI_PODMAN_ROOT", "/var/tmp/vpccni-podman"))
# overlay needs a file system that can hold an upper directory (ext4, xfs); vfs works anywhere, copying.
DRIVER = os.environ.get("VPCCNI_PODMAN_DRIVER", "overlay")
# The hard nofile limit here is 20000: podman's default of 1048576 makes crun's setrlimit fail (EPERM).
ULIMITS = ('"nofile=20000:20000"', '"nproc=4096:4096"')

# Runs "$@" in the private mount namespace, after hiding /run and /var/lib and the cgroup2 mount.
_NAMESPACE_SETUP = """set -e
mount -n -t tmpfs -o mode=0755,size=64m vpccni-podman-run /run
mount -n -t tmpfs -o mode=0755,size=64m vpccni-podman-varlib /var/lib
if mountpoint -q /sys/fs/cgroup/unified; then umount -n /sys/fs/cgroup/unified; fi
exec "$@"
"""


class PodmanFailed(subprocess.CalledProcessError):
    """A command failed; its message ends with what it wrote to stderr (when captured)."""

    def __str__(self) -> str:
        err = self.stderr.decode(errors="replace").strip()[-2000:] if isinstance(self.stderr, bytes) else ""
        return super().__str__() + (f"\n{err}" if err else "")


class PrivatePodman:
    """One session: ``run`` podman commands, or ``shell`` a pipeline into podman (mmdebstrap | import)."""

    def __init__(self, root: Path, config: Path) -> None:
        self.root = root
        self.config = config

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONTAINERS_", "REGISTRY_AUTH"))}
        # No REGISTRY_AUTH_FILE: nothing is pulled or pushed, and podman's default is under the private /run.
        env.update(
            CONTAINERS_CONF=str(self.config / "containers.conf"),
            CONTAINERS_STORAGE_CONF=str(self.config / "storage.conf"),
            CONTAINERS_REGISTRIES_CONF=str(self.config / "registries.conf"),
            TMPDIR=str(self.root / "scratch"),
        )
        return env

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` wrapped to run in the private mount namespace."""
        return ["unshare", "-m", "--propagation", "slave", "sh", "-c", _NAMESPACE_SETUP, "vpccni-podman",
                *argv]

    def run(self, *args: str, input: bytes | None = None, check: bool = True, timeout: float = 1800,
            capture: bool = True) -> subprocess.CompletedProcess[bytes]:
        """``podman ARGS``; CalledProcessError (with its output) when it fails and ``check``."""
        return self._run(["podman", *args], input, check, timeout, capture)

    def shell(self, script: str, *, check: bool = True, timeout: float = 1800, capture: bool = False,
              env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """A bash script in the namespace, with this session's podman configuration; ``pipefail``, so a failed
        producer (mmdebstrap) fails a pipeline into podman."""
        return self._run(["bash", "-o", "pipefail", "-c", script], None, check, timeout, capture, env)

    def _run(self, argv: list[str], input: bytes | None, check: bool, timeout: float, capture: bool,
             env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(self.argv(argv), input=input, timeout=timeout, env={**self.env, **(env or {})},
                              stdout=subprocess.PIPE if capture else None,
                              stderr=subprocess.PIPE if capture else None)
        if check and done.returncode != 0:
            raise PodmanFailed(done.returncode, argv, done.stdout, done.stderr)
        return done

    def with_network(self, name: str, network: Mapping[str, str | Sequence[str]]) -> PrivatePodman:
        """A session on the same storage whose containers.conf sets these ``[network]`` keys (a node
        runtime's CNI backend and directories, say); its files are in this session's, removed with them."""
        config = self.config / name
        config.mkdir(exist_ok=True)
        _write_config(config, self.root, network)
        return PrivatePodman(self.root, config)

    def image_exists(self, ref: str) -> bool:
        return self.run("image", "exists", ref, check=False).returncode == 0

    def image_size(self, ref: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", ref).stdout.decode().strip())


def _toml(value: str | Sequence[str]) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    return "[" + ", ".join(f'"{v}"' for v in value) + "]"


def _write_config(config: Path, root: Path, network: Mapping[str, str | Sequence[str]] | None = None) -> None:
    # The engine's paths are the same in every session on one root: podman's database records them and
    # refuses another value.
    network = {"network_config_dir": str(root / "network"), **(network or {})}
    (config / "containers.conf").write_text(f"""[containers]
netns = "none"
cgroups = "disabled"
default_ulimits = [{", ".join(ULIMITS)}]

[engine]
cgroup_manager = "cgroupfs"
runtime = "crun"
events_logger = "file"
events_logfile_path = "{root}/run/events.log"
lock_type = "file"
tmp_dir = "{root}/tmp"
volume_path = "{root}/volumes"
static_dir = "{root}/storage/libpod"
image_copy_tmp_dir = "{root}/scratch"

[network]
""" + "".join(f"{key} = {_toml(value)}\n" for key, value in network.items()))
    (config / "storage.conf").write_text(f"""[storage]
driver = "{DRIVER}"
graphroot = "{root}/storage"
runroot = "{root}/run"
""")
    (config / "registries.conf").write_text("unqualified-search-registries = []\n")


@contextmanager
def private_podman(root: Path = DEFAULT_ROOT) -> Iterator[PrivatePodman]:
    """A session on ``root``: its lock held, its per-command state (run, scratch) emptied first."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Paths podman records in its database stay the same; what was in them belonged to commands that
        # are over (their mount namespaces with them).
        for transient in ("run", "scratch", "tmp"):
            shutil.rmtree(root / transient, ignore_errors=True)
        for directory in ("storage", "run", "scratch", "tmp", "volumes", "network"):
            (root / directory).mkdir(mode=0o700, exist_ok=True)
        config = Path(tempfile.mkdtemp(prefix="vpccni-podman-conf-"))
        try:
            _write_config(config, root)
            yield PrivatePodman(root, config)
        finally:
            shutil.rmtree(config, ignore_errors=True)
