"""A container runtime on an emulated node: Debian's podman with its CNI backend, as a node runs it.

The node is a network namespace of the emulated VPC (its IMDS and EC2 endpoint inside) and a directory
tree under a temporary root standing for its disk. The runtime runs in that network namespace (joined with
``nsenter --net``) and in a mount namespace of its own, held by one long-lived process, where

* ``/run`` and ``/var/lib`` are fresh tmpfs: what crun, podman and libcni write there (crun's state, the
  pods' ``/run/netns/cni-*``, libcni's cache in ``/var/lib/cni``) lives and dies with the node;
* the cgroup v2 mount that makes crun refuse this machine's hybrid layout is unmounted;
* each of the node's paths the chart mounts (``/opt/cni/bin``, ``/etc/cni/net.d``, ``/run/vpccni`` ...)
  is the node's directory, bind-mounted at that path; a missing parent (``/opt/cni``) is made in a
  writable overlay whose upper layer is in the private ``/run``, so the machine's own file system is never
  written. The kernel's paths (``/proc/sys/net/ipv4``) are left as they are: the network namespace of
  whoever opens them decides what they show;
* the machine's Python is hidden (every ``python3*`` on PATH and in /usr/bin replaced by an empty file
  that cannot run, ``/usr/lib/python3*`` and a pyenv by empty directories): the plugin must run from its
  payload alone.

Every podman command of the node (its DaemonSet's containers and the pods) enters that mount namespace
and network namespace (``nsenter --mount --net``), so the conmon and ``podman container cleanup``
processes it starts -- which run the CNI DEL -- are in them too. podman's configuration is the session's
private one (scripts/private_podman.py: no default network, no cgroups, file locks, explicit ulimits,
private storage), plus ``network_backend = "cni"`` with the node's plugin and conflist directories.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from scripts.private_podman import PodmanFailed, PrivatePodman
from tests.node.daemonset import HostPath
from tests.node.support import LABEL

CNI_BIN, CNI_CONF = "/opt/cni/bin", "/etc/cni/net.d"
# $1: the node's root; then "node:<path>:<dir|file>" for each node path, "hide-file:<path>" and
# "hide-dir:<path>" for each of the machine's Python interpreters and libraries.
_SETUP = """set -eu
root=$1; shift
mount -n -t tmpfs -o mode=0755,size=64m vpccni-node-run /run
mount -n -t tmpfs -o mode=0755,size=64m vpccni-node-varlib /var/lib
if mountpoint -q /sys/fs/cgroup/unified; then umount -n /sys/fs/cgroup/unified; fi
state=/run/.vpccni-node
mkdir -p "$state"
: > "$state/no-python"
chmod 0644 "$state/no-python"
n=0
for spec in "$@"; do
    what=${spec%%:*}; rest=${spec#*:}
    case "$what" in
    hide-file) mount -n --bind "$state/no-python" "$rest";;
    hide-dir) mount -n -t tmpfs -o size=1m,mode=0755 vpccni-no-python "$rest";;
    node)
        path=${rest%:*}; kind=${rest##*:}
        if [ ! -e "$path" ]; then
            parent=$(dirname "$path")
            while [ ! -e "$parent" ]; do parent=$(dirname "$parent"); done
            case "$parent" in
            /run|/run/*|/var/lib|/var/lib/*) ;;  # our tmpfs already
            *)
                n=$((n + 1)); mkdir -p "$state/$n/upper" "$state/$n/work"
                mount -n -t overlay -o "lowerdir=$parent,upperdir=$state/$n/upper,workdir=$state/$n/work" \\
                    vpccni-node "$parent";;
            esac
            if [ "$kind" = file ]; then mkdir -p "$(dirname "$path")"; : > "$path"; else mkdir -p "$path"; fi
        fi
        mount -n --bind "$root$path" "$path";;
    esac
done
echo ready
exec sleep infinity
"""


def machine_pythons() -> list[str]:
    """The machine's Python interpreters (every python3* file on PATH and in the usual places) and their
    library directories, as ``hide-file:``/``hide-dir:`` specs."""
    dirs = [*os.environ.get("PATH", "").split(":"), "/usr/bin", "/usr/local/bin", "/bin"]
    files = {os.path.realpath(f) for d in dirs if d for f in glob.glob(os.path.join(d, "python3*"))}
    libraries = [*glob.glob("/usr/lib/python3*"), *glob.glob("/usr/local/lib/python3*"),
                 *glob.glob(os.path.expanduser("~/.pyenv"))]
    return ([f"hide-file:{f}" for f in sorted(files) if os.path.isfile(f)]
            + [f"hide-dir:{d}" for d in sorted(libraries) if os.path.isdir(d) and not os.path.islink(d)])


class NodeRuntime:
    """The node's podman; see the module docstring. ``close`` removes every container it ran."""

    def __init__(self, pm: PrivatePodman, node_netns: str, root: Path, paths: Iterable[HostPath]) -> None:
        self.root = root
        self.node_netns = node_netns  # a path the machine's mount namespace sees (/run/netns/<name>)
        self.paths = [p for p in paths if not p.kernel]
        self.pm = pm.with_network("node-runtime", {
            "network_backend": "cni", "cni_plugin_dirs": [CNI_BIN], "network_config_dir": CNI_CONF})
        self._holder: subprocess.Popen[str] | None = None

    def start(self) -> NodeRuntime:
        specs = []
        for path in self.paths:
            on_disk = self.root / path.path.lstrip("/")
            if path.type in ("File", "FileOrCreate"):
                on_disk.parent.mkdir(parents=True, exist_ok=True)
                on_disk.touch()
            else:
                on_disk.mkdir(parents=True, exist_ok=True)
            specs.append(f"node:{path.path}:{'file' if path.type.startswith('File') else 'dir'}")
        self._holder = subprocess.Popen(
            ["nsenter", f"--net={self.node_netns}", "unshare", "-m", "--propagation", "slave",
             "sh", "-c", _SETUP, "vpccni-node", str(self.root), *specs, *machine_pythons()],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "ready":
            self._holder.kill()
            _, err = self._holder.communicate(timeout=30)
            raise AssertionError(f"the node runtime's mount namespace could not be set up: {err}")
        return self

    @property
    def pid(self) -> int:
        assert self._holder is not None, "the node runtime is not started"
        return self._holder.pid

    @property
    def netns(self) -> str:
        """The node's network namespace as a path podman and the containers can open (hostNetwork)."""
        return f"/proc/{self.pid}/ns/net"

    def enter(self) -> list[str]:
        """argv prefix that runs a command in the node runtime's mount and network namespaces."""
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", f"--net={self.netns}"]

    def run(self, argv: Sequence[str], *, input: bytes | None = None, timeout: float = 120,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
        """A command in the node's namespaces (not podman: e.g. "is there a Python here?")."""
        return subprocess.run([*self.enter(), *argv], input=input, capture_output=True, timeout=timeout,
                              env=dict(env) if env is not None else None, cwd="/", check=False)

    def podman(self, *args: str, check: bool = True, timeout: float = 300, input: bytes | None = None,
               fd3: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """``podman ARGS`` on the node; PodmanFailed (with its stderr) when it fails and ``check``.
        ``fd3``: a file the machine's mount namespace sees, opened as descriptor 3 for podman (to hand
        to a container with ``--preserve-fds 1``)."""
        argv = [*self.enter(), "podman", *args]
        if fd3 is not None:
            argv = ["sh", "-c", 'exec "$@" 3<"$0"', fd3, *argv]
        done = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=self.pm.env,
                              cwd="/", check=False)
        if check and done.returncode != 0:
            raise PodmanFailed(done.returncode, ["podman", *args], done.stdout, done.stderr)
        return done

    def new_name(self, role: str) -> str:
        return f"node-{role}-{uuid.uuid4().hex[:8]}"

    def labelled(self) -> list[str]:
        listed = self.podman("ps", "--all", "--quiet", "--filter", f"label={LABEL}", check=False)
        return listed.stdout.decode().split()

    def close(self) -> None:
        """Remove every container of ours (pods first: their DEL needs ipamd), then the namespace holder."""
        if self._holder is None:
            return
        try:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                pods = self.podman("ps", "--all", "--quiet", "--filter", f"label={LABEL}",
                                   "--filter", "label=vpccni-test-pod", check=False).stdout.decode().split()
                for cid in [*pods, *(c for c in self.labelled() if c not in pods)]:
                    self.podman("rm", "--force", "--time", "10", cid, check=False)
        finally:
            if self._holder.poll() is None:
                os.kill(self._holder.pid, signal.SIGKILL)
            self._holder.communicate(timeout=30)
            self._holder = None
