"""The runtime side of CNI, for tests: a libcni driver, and a small harness for the 1.1 verbs.

:func:`build_driver` compiles ``tests/tools/libcni-driver/main.go`` against Debian's libcni 1.1.2
(offline: GO111MODULE=off, GOPATH with Debian's /usr/share/gocode, no module proxy) into the gitignored
``build/`` directory, keyed by the source's hash, so a session builds it at most once and an edit
rebuilds it. :class:`Libcni` runs it: ADD/CHECK/DEL of a conflist with the result cache, runtime args
(``IgnoreUnknown=1`` and ``K8S_POD_*`` as kubelet/containerd send them) and capability args.

libcni 1.1.2 predates GC and STATUS, so :func:`exec_plugin` runs a plugin the way a 1.1 runtime
would for those (request derived from the conflist like libcni does: ``name`` and the chosen
``cniVersion`` injected, ``cni.dev/valid-attachments`` plus the legacy ``cni.dev/attachments`` for GC).

Every command can be prefixed (``prefix=["ip", "netns", "exec", "pl7node"]``) so that plugins run
inside a test's node namespace, never in the root one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import REPO
from vpccni.testing.cluster_node import runtime_env

DRIVER_SRC_DIR = REPO / "tests" / "tools" / "libcni-driver"
BUILD_ROOT = REPO / "build" / "libcni-driver"
GOCODE = "/usr/share/gocode"
DEFAULT_ARGS_PREFIX = "IgnoreUnknown=1"


class DriverBuildError(RuntimeError):
    pass


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(DRIVER_SRC_DIR.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build_driver() -> Path:
    """The driver binary, built if this source hash has not been built yet."""
    out_dir = BUILD_ROOT / _source_hash()
    binary = out_dir / "libcni-driver"
    if binary.exists():
        return binary
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pl7-gopath-") as gopath:
        env = {
            **os.environ,
            "GO111MODULE": "off",
            "GOPATH": f"{gopath}:{GOCODE}",
            "GOPROXY": "off",
            "GOCACHE": str(BUILD_ROOT / "gocache"),
        }
        partial = out_dir / f".libcni-driver.{os.getpid()}"
        proc = subprocess.run(
            ["go", "build", "-o", str(partial), "."],
            cwd=DRIVER_SRC_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if proc.returncode != 0:
        raise DriverBuildError(
            f"building the libcni driver failed (need golang-go and golang-github-appc-cni-dev, "
            f"see scripts/install-system-deps.sh):\n{proc.stderr}"
        )
    os.replace(partial, binary)  # concurrent sessions: the last identical build wins, atomically
    return binary


@dataclass(frozen=True)
class Run:
    """One finished process: exit status and output."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error(self) -> dict[str, Any]:
        """The CNI error JSON printed on stdout by a failed run."""
        assert self.returncode != 0, f"expected a failure, got rc 0: {self.stdout}"
        return dict(json.loads(self.stdout))

    def describe(self) -> str:
        return f"{' '.join(self.argv)}\nrc={self.returncode}\nstdout={self.stdout}\nstderr={self.stderr}"


def _run(
    argv: Sequence[str], stdin: bytes | None = None, env: Mapping[str, str] | None = None, timeout: float = 60
) -> Run:
    proc = subprocess.run(
        list(argv),
        input=stdin,
        env=dict(env) if env is not None else None,
        capture_output=True,
        timeout=timeout,
    )
    return Run(tuple(argv), proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def k8s_args(namespace: str = "default", name: str = "", uid: str = "", infra: str = "") -> str:
    """CNI_ARGS as kubelet/containerd build it."""
    pairs = [DEFAULT_ARGS_PREFIX, f"K8S_POD_NAMESPACE={namespace}", f"K8S_POD_NAME={name}"]
    if uid:
        pairs.append(f"K8S_POD_UID={uid}")
    pairs.append(f"K8S_POD_INFRA_CONTAINER_ID={infra}")
    return ";".join(pairs)


@dataclass
class Libcni:
    """libcni over one conflist file, one plugin path and one result cache."""

    binary: Path
    conf: Path
    cni_path: Sequence[Path]
    cache_dir: Path
    prefix: Sequence[str] = field(default_factory=tuple)

    def _argv(
        self,
        verb: Sequence[str],
        container_id: str = "",
        netns: str = "",
        ifname: str = "eth0",
        args: str = "",
        cap_args: Mapping[str, Any] | None = None,
    ) -> list[str]:
        argv = [
            *self.prefix,
            str(self.binary),
            "-conf",
            str(self.conf),
            "-cni-path",
            ":".join(str(p) for p in self.cni_path),
            "-cache-dir",
            str(self.cache_dir),
            "-container-id",
            container_id,
            "-netns",
            netns,
            "-ifname",
            ifname,
            "-args",
            args,
        ]
        if cap_args is not None:
            argv += ["-cap-args", json.dumps(cap_args)]
        return argv + list(verb)

    def add(self, container_id: str, netns: str, **kw: Any) -> Run:
        return _run(self._argv(["add"], container_id, netns, **kw))

    def check(self, container_id: str, netns: str, **kw: Any) -> Run:
        return _run(self._argv(["check"], container_id, netns, **kw))

    def delete(self, container_id: str, netns: str, **kw: Any) -> Run:
        return _run(self._argv(["del"], container_id, netns, **kw))

    def cached(self, container_id: str, netns: str = "", **kw: Any) -> Run:
        return _run(self._argv(["cached"], container_id, netns, **kw))

    def version(self, plugin_type: str) -> Run:
        return _run(self._argv(["version", plugin_type]))


# --- the 1.1 verbs, by hand ------------------------------------------------------------------------


def highest_version(conflist: Mapping[str, Any]) -> str:
    """What a libcni >= 1.2 runtime picks: the highest of cniVersion and cniVersions."""
    versions = [conflist["cniVersion"], *conflist.get("cniVersions", [])]
    return str(max(versions, key=lambda v: tuple(int(x) for x in v.split("."))))


def request_config(
    conflist: Mapping[str, Any],
    index: int = 0,
    version: str | None = None,
    inject: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The stdin libcni derives for plugin ``index`` of ``conflist`` (``inject``: runtime keys)."""
    conf = dict(conflist["plugins"][index])
    conf.pop("capabilities", None)
    conf["name"] = conflist["name"]
    conf["cniVersion"] = version or highest_version(conflist)
    conf.update(inject or {})
    return conf


def gc_config(
    conflist: Mapping[str, Any], valid: Sequence[tuple[str, str]], index: int = 0
) -> dict[str, Any]:
    attachments = [{"containerID": cid, "ifname": ifname} for cid, ifname in valid]
    keys = {"cni.dev/valid-attachments": attachments, "cni.dev/attachments": attachments}
    return request_config(conflist, index, inject=keys)


def exec_plugin(
    plugin: Sequence[str],
    command: str,
    stdin: bytes | Mapping[str, Any],
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "",
    args: str = "",
    cni_path: str = "",
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Run:
    """Exec a plugin as a runtime does: CNI_* env (only the non-empty ones) and stdin."""
    data = stdin if isinstance(stdin, bytes) else json.dumps(stdin).encode()
    full = runtime_env(
        command, container_id=container_id, netns=netns, ifname=ifname, args=args, cni_path=cni_path, env=env
    )
    return _run(plugin, data, full, timeout)
