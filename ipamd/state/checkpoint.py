"""The durable checkpoint of ipamd's assignments and cooldowns (path: AWS_VPC_K8S_CNI_BACKING_STORE).

Format ``vpccni-ipam/1`` (one JSON object)::

    {"version": "vpccni-ipam/1", "written_at": 1700000000.5,
     "allocations": [{"network": "vpccni", "container_id": "...", "ifname": "eth0", "address": "10.0.1.23",
                      "eni_id": "eni-...", "pod": {"namespace": "default", "name": "web-0", ...},
                      "netns": "/run/netns/x", "assigned_at": 1700000000.1}],
     "cooldown": [{"address": "10.0.1.9", "eni_id": "eni-...", "released_at": 1699999990.0}]}

Times are wall-clock seconds, so a cooldown started before a restart still runs after it (aws loses it,
#1127). aws-node's own ``vpc-cni-ipam/1`` file is read too, so a node switched from aws-node keeps its
pods' addresses; it is rewritten in our format at the first commit. Any other version, or a file that
does not parse, stops ipamd with an error naming the file and the problem: starting empty would hand out
addresses that pods still hold.

Writes replace the file atomically: a temp file in the same directory, fsync, rename over the old file,
fsync of the directory. A reader (or a restart after SIGKILL) sees the old or the new version, never a
mix; a leftover temp file is never read.

Group commit: :class:`GroupCommitter` gives each caller ``await commit()``, which returns once a write
that *started after the call* is durable. Concurrent callers share one write; the snapshot is taken on
the event loop (so it is consistent) and encoded + written + fsynced on one dedicated thread, so the loop
keeps accepting requests while the disk works.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from ipamd.state.datastore import Allocation, AllocationKey, Datastore
from vpccni import fsutil
from vpccni.errors import PermanentError, RetryableError
from vpccni.wire.protocol import PodRef

VERSION = "vpccni-ipam/1"
AWS_VERSION = "vpc-cni-ipam/1"
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class CooldownRecord:
    address: str
    released_at: float  # wall-clock seconds
    eni_id: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointData:
    allocations: tuple[Allocation, ...] = ()
    cooldown: tuple[CooldownRecord, ...] = ()
    format: str = VERSION  # the version the data was read from (AWS_VERSION after a migration)


class CheckpointError(PermanentError):
    """The checkpoint cannot be read safely; ipamd must not start (message names file and problem)."""


class CheckpointWriteError(RetryableError):
    """Writing the checkpoint failed (disk full, I/O error); the change is not durable."""


# --- encoding ------------------------------------------------------------------------------------


def encode_checkpoint(data: CheckpointData, written_at: float) -> bytes:
    allocations = [
        {
            "network": a.key.network,
            "container_id": a.key.container_id,
            "ifname": a.key.ifname,
            "address": a.address,
            "eni_id": a.eni_id,
            "pod": {k: v for k, v in (("namespace", a.pod.namespace), ("name", a.pod.name),
                                      ("uid", a.pod.uid), ("infra_container_id", a.pod.infra_container_id))
                    if v},
            "netns": a.netns,
            "assigned_at": a.assigned_at,
        }
        for a in data.allocations
    ]
    cooldown = [{"address": c.address, "eni_id": c.eni_id, "released_at": c.released_at}
                for c in data.cooldown]
    obj = {"version": VERSION, "written_at": written_at, "allocations": allocations, "cooldown": cooldown}
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


class _Fields:
    """Typed access to one JSON object; errors name the file, the entry and the field."""

    def __init__(self, obj: object, where: str) -> None:
        if not isinstance(obj, dict):
            raise CheckpointError(f"{where}: expected an object")
        self._obj: dict[str, Any] = obj
        self._where = where

    def text(self, name: str, *, required: bool = True) -> str:
        value = self._obj.get(name, None if required else "")
        if not isinstance(value, str):
            raise CheckpointError(f"{self._where}.{name}: expected a string, got {value!r}")
        return value

    def number(self, name: str) -> float:
        value = self._obj.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CheckpointError(f"{self._where}.{name}: expected a number, got {value!r}")
        return float(value)

    def address(self, name: str) -> str:
        value = self.text(name)
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise CheckpointError(f"{self._where}.{name}: {value!r} is not an IPv4 address") from None

    def sub(self, name: str) -> _Fields:
        return _Fields(self._obj.get(name) or {}, f"{self._where}.{name}")

    def items(self, name: str) -> list[_Fields]:
        value = self._obj.get(name) or []
        if not isinstance(value, list):
            raise CheckpointError(f"{self._where}.{name}: expected a list")
        return [_Fields(item, f"{self._where}.{name}[{i}]") for i, item in enumerate(value)]


def _decode_ours(top: _Fields) -> CheckpointData:
    allocations = []
    for f in top.items("allocations"):
        pod = f.sub("pod")
        allocations.append(Allocation(
            key=AllocationKey(f.text("network"), f.text("container_id"), f.text("ifname")),
            address=f.address("address"),
            eni_id=f.text("eni_id", required=False),
            pod=PodRef(pod.text("namespace", required=False), pod.text("name", required=False),
                       pod.text("uid", required=False), pod.text("infra_container_id", required=False)),
            netns=f.text("netns", required=False),
            assigned_at=f.number("assigned_at"),
        ))
    cooldown = [
        CooldownRecord(f.address("address"), f.number("released_at"), f.text("eni_id", required=False))
        for f in top.items("cooldown")
    ]
    return CheckpointData(tuple(allocations), tuple(cooldown), VERSION)


def _decode_aws(top: _Fields) -> CheckpointData:
    """aws-node's file: assignments only (no ENI, no cooldown); timestamps in Unix nanoseconds."""
    allocations = []
    for f in top.items("allocations"):
        meta = f.sub("metadata")
        allocations.append(Allocation(
            key=AllocationKey(f.text("networkName"), f.text("containerID"), f.text("ifName")),
            address=f.address("ipv4"),
            eni_id="",
            pod=PodRef(meta.text("k8sPodNamespace", required=False), meta.text("k8sPodName", required=False)),
            assigned_at=f.number("allocationTimestamp") / 1e9,
        ))
    return CheckpointData(tuple(allocations), (), AWS_VERSION)


def decode_checkpoint(raw: bytes, source: str) -> CheckpointData:
    """Parse checkpoint bytes read from ``source`` (named in errors)."""
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{source}: not valid JSON ({exc}); refusing to start rather than "
                              f"lose the allocations it held") from None
    top = _Fields(obj, source)
    version = top.text("version")
    if version == VERSION:
        return _decode_ours(top)
    if version == AWS_VERSION:
        return _decode_aws(top)
    raise CheckpointError(f"{source}: unknown checkpoint version {version!r} (this ipamd reads {VERSION!r} "
                          f"and aws-node's {AWS_VERSION!r}); refusing to start rather than lose allocations")


def load_checkpoint(path: str) -> CheckpointData | None:
    """The checkpoint at ``path``, or None if there is none (a fresh node)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint: {exc.strerror}") from exc
    return decode_checkpoint(raw, path)


# --- writing -------------------------------------------------------------------------------------


def write_atomic(path: str, payload: bytes, *, dir_fd: int | None = None) -> None:
    """Replace ``path`` with ``payload`` so that a crash leaves the old or the new file, both complete.
    ``dir_fd``: an open descriptor of the file's directory, to fsync without reopening it each time."""
    # One fixed temp name: load() ignores it, and only this ipamd writes here.
    fsutil.write_atomic(path, payload, temp=path + TEMP_SUFFIX, dir_fd=dir_fd)


def _open_dir_of(path: str) -> int:
    return os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def snapshot_of(datastore: Datastore, now: float) -> CheckpointData:
    """What the checkpoint must hold for ``datastore`` at wall-clock ``now``."""
    cooldown = []
    for address, released_at in datastore.cooling(now):
        cooldown.append(CooldownRecord(address, released_at, datastore.eni_of(address) or ""))
    return CheckpointData(tuple(datastore.allocations()), tuple(cooldown))


class Committer(Protocol):
    """Makes the datastore durable: what the handler and the reconciler wait on after a change."""

    async def commit(self) -> None:
        """Return once every datastore change made before the call is durable."""
        ...


class GroupCommitter:
    """Makes datastore changes durable, one write for every change made before it started."""

    def __init__(self, path: str, snapshot: Callable[[], CheckpointData],
                 clock: Callable[[], float]) -> None:
        """``snapshot`` is called on the event loop; ``clock`` gives wall-clock seconds (written_at)."""
        self.path = path
        self._snapshot = snapshot
        self._clock = clock
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._dir_fd: int | None = None  # opened and used by the writer thread only
        self.commits = 0  # calls to commit()
        self.writes = 0  # durable writes (each is one temp-file fsync + one directory fsync)

    async def commit(self) -> None:
        """Return once every change made before this call is durable; raise CheckpointWriteError if not.
        Cancelling the caller does not cancel the write other callers share."""
        self.commits += 1
        loop = asyncio.get_running_loop()
        if self._pending is None:
            self._pending = loop.create_future()
            # A batch nobody awaits any more (callers cancelled) must not log "never retrieved".
            self._pending.add_done_callback(lambda f: f.cancelled() or f.exception())
        batch = self._pending
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_batches(), name="checkpoint-writer")
        await asyncio.shield(batch)

    async def aclose(self) -> None:
        """Finish the write in flight (and any batch queued behind it), then stop the writer thread."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        self._executor.shutdown(wait=True)
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    async def _write_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending is not None:
            batch, self._pending = self._pending, None
            try:
                data = self._snapshot()
                await loop.run_in_executor(self._executor, self._write, data, self._clock())
            except OSError as exc:
                batch.set_exception(CheckpointWriteError(f"{self.path}: {exc.strerror or exc}"))
            except Exception as exc:  # a bug in snapshot/encode: the batch's callers must learn, not hang
                batch.set_exception(exc)
            else:
                batch.set_result(None)

    def _write(self, data: CheckpointData, written_at: float) -> None:
        if self._dir_fd is None:
            self._dir_fd = _open_dir_of(self.path)
        write_atomic(self.path, encode_checkpoint(data, written_at), dir_fd=self._dir_fd)
        self.writes += 1
