"""Checkpoint: format round trip, refusal of unknown versions and corrupt files, aws-node import,
leftover temp files, and group commit (fewer writes than commits, each caller durable on return)."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest

from ipamd.state.checkpoint import (
    AWS_VERSION,
    TEMP_SUFFIX,
    VERSION,
    CheckpointData,
    CheckpointError,
    CheckpointWriteError,
    CooldownRecord,
    GroupCommitter,
    decode_checkpoint,
    encode_checkpoint,
    load_checkpoint,
    snapshot_of,
    write_atomic,
)
from ipamd.state.datastore import Allocation, AllocationKey, Datastore
from vpccni.wire.protocol import PodRef

NOW = 1_700_000_000.0


def clock() -> float:
    return NOW


def sample() -> CheckpointData:
    return CheckpointData(
        allocations=(
            Allocation(AllocationKey("vpccni", "c1", "eth0"), "10.0.0.10", "eni-a",
                       PodRef("default", "web-0", "uid-1", "infra-1"), "/run/netns/a", NOW - 5),
            Allocation(AllocationKey("vpccni", "c2", "net1"), "10.0.0.11", "eni-b"),
        ),
        cooldown=(CooldownRecord("10.0.0.12", NOW - 3, "eni-a"),),
    )


def test_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    write_atomic(path, encode_checkpoint(sample(), NOW))
    assert load_checkpoint(path) == sample()
    assert json.loads(Path(path).read_text())["version"] == VERSION
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_missing_file_is_a_fresh_node(tmp_path: Path) -> None:
    assert load_checkpoint(str(tmp_path / "none.json")) is None


def test_leftover_temp_file_is_ignored(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    write_atomic(path, encode_checkpoint(sample(), NOW))
    Path(path + TEMP_SUFFIX).write_bytes(b'{"version": "vpccni-ipam/1", "allocations": [')  # torn write
    assert load_checkpoint(path) == sample()
    write_atomic(path, encode_checkpoint(CheckpointData(), NOW))  # the next write replaces it
    assert load_checkpoint(path) == CheckpointData()
    assert not os.path.exists(path + TEMP_SUFFIX)


@pytest.mark.parametrize("content, message", [
    (b'{"version": "vpccni-ipam/2", "allocations": []}', "unknown checkpoint version 'vpccni-ipam/2'"),
    (b'{"version": "vpccni-ipam/1", "allocations": [', "not valid JSON"),
    (b'[1, 2]', "expected an object"),
    (b'{"version": "vpccni-ipam/1", "allocations": [{"network": "n", "container_id": "c", "ifname": "e",'
     b' "address": "10.0.0.999", "assigned_at": 1}]}', "allocations[0].address: '10.0.0.999' is not an IPv4"),
    (b'{"version": "vpccni-ipam/1", "allocations": [{"network": "n", "container_id": 5, "ifname": "e",'
     b' "address": "10.0.0.9", "assigned_at": 1}]}', "allocations[0].container_id: expected a string"),
])
def test_unreadable_checkpoint_refuses_to_start(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "ipam.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_reads_aws_node_checkpoint() -> None:
    raw = json.dumps({
        "version": AWS_VERSION,
        "allocations": [
            {"networkName": "aws-cni", "containerID": "abc", "ifName": "eth0", "ipv4": "10.0.1.23",
             "allocationTimestamp": 1690000000123456789,
             "metadata": {"k8sPodNamespace": "default", "k8sPodName": "web-0", "interfacesCount": 1}},
            {"networkName": "_migrated-from-cri", "containerID": "old", "ifName": "unknown",
             "ipv4": "10.0.1.24", "allocationTimestamp": 1690000000000000000},
        ],
    }).encode()
    data = decode_checkpoint(raw, "ipam.json")
    assert data.format == AWS_VERSION and data.cooldown == ()
    first, second = data.allocations
    assert first.key == AllocationKey("aws-cni", "abc", "eth0") and first.address == "10.0.1.23"
    assert first.pod == PodRef("default", "web-0") and first.assigned_at == pytest.approx(1690000000.1234568)
    assert second.key == AllocationKey("_migrated-from-cri", "old", "unknown")


def test_snapshot_holds_assignments_and_live_cooldowns_only() -> None:
    now = [NOW]
    ds = Datastore(cooldown_s=10, clock=lambda: now[0])
    ds.add_eni("eni-a", 0, True)
    ds.add_cidrs("eni-a", ["10.0.0.10/32", "10.0.0.11/32", "10.0.0.12/32"])
    ds.assign(AllocationKey("n", "old", "eth0"))
    ds.release(AllocationKey("n", "old", "eth0"))
    now[0] += 20  # that cooldown is over
    held = ds.assign(AllocationKey("n", "c1", "eth0"))
    ds.assign(AllocationKey("n", "c2", "eth0"))
    ds.release(AllocationKey("n", "c2", "eth0"))
    snap = snapshot_of(ds, now[0])
    assert snap.allocations == (held,)
    assert snap.cooldown == (CooldownRecord("10.0.0.12", now[0], "eni-a"),)


# --- group commit -------------------------------------------------------------------------------


def _committer(path: str, ds: Datastore) -> GroupCommitter:
    return GroupCommitter(path, lambda: snapshot_of(ds, NOW), clock)


def _store(n: int) -> Datastore:
    ds = Datastore(cooldown_s=0, clock=clock)
    ds.add_eni("eni-a", 0, True)
    ds.add_cidrs("eni-a", [f"10.0.{i // 250}.{i % 250 + 1}/32" for i in range(n)])
    return ds


def test_concurrent_commits_share_writes_and_are_durable_on_return(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    ds = _store(200)

    async def main() -> GroupCommitter:
        committer = _committer(path, ds)

        async def one(n: int) -> None:
            key = AllocationKey("vpccni", f"c{n}", "eth0")
            for _ in range(n % 3):
                await asyncio.sleep(0)  # spread callers over several batches
            ds.assign(key)
            await committer.commit()
            on_disk = load_checkpoint(path)
            assert on_disk is not None and key in {a.key for a in on_disk.allocations}

        await asyncio.gather(*(one(n) for n in range(150)))
        await committer.aclose()
        return committer

    committer = asyncio.run(main())
    assert committer.commits == 150
    assert 1 <= committer.writes < 150
    final = load_checkpoint(path)
    assert final is not None and len(final.allocations) == 150


class _GatedCommitter(GroupCommitter):
    """Holds each write until the test opens the gate (a slow disk, made deterministic)."""

    def __init__(self, path: str, ds: Datastore) -> None:
        super().__init__(path, lambda: snapshot_of(ds, NOW), clock)
        self.gate = threading.Event()
        self.entered = threading.Event()

    def _write(self, data: CheckpointData, written_at: float) -> None:
        self.entered.set()
        self.gate.wait(10)
        super()._write(data, written_at)


def test_change_after_a_write_started_waits_for_the_next_write(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    ds = _store(4)

    async def main() -> None:
        committer = _GatedCommitter(path, ds)
        ds.assign(AllocationKey("n", "a", "eth0"))
        first = asyncio.create_task(committer.commit())
        await asyncio.to_thread(committer.entered.wait, 10)  # write 1 has its snapshot
        ds.assign(AllocationKey("n", "b", "eth0"))
        second = asyncio.create_task(committer.commit())
        await asyncio.sleep(0.01)
        assert not first.done() and not second.done()
        committer.gate.set()
        await first
        await second
        on_disk = load_checkpoint(path)
        assert on_disk is not None and {a.key.container_id for a in on_disk.allocations} == {"a", "b"}
        assert committer.writes == 2
        await committer.aclose()

    asyncio.run(main())


def test_cancelled_caller_does_not_cancel_the_shared_write(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    ds = _store(4)

    async def main() -> None:
        committer = _GatedCommitter(path, ds)
        ds.assign(AllocationKey("n", "a", "eth0"))
        quitter = asyncio.create_task(committer.commit())
        stayer = asyncio.create_task(committer.commit())
        await asyncio.to_thread(committer.entered.wait, 10)
        quitter.cancel()
        committer.gate.set()
        await stayer
        assert quitter.cancelled()
        assert load_checkpoint(path) is not None
        await committer.aclose()

    asyncio.run(main())


def test_write_failure_is_reported_and_the_next_commit_retries(tmp_path: Path) -> None:
    path = str(tmp_path / "missing-dir" / "ipam.json")
    ds = _store(2)

    async def main() -> None:
        committer = _committer(path, ds)
        ds.assign(AllocationKey("n", "a", "eth0"))
        with pytest.raises(CheckpointWriteError, match="missing-dir"):
            await committer.commit()
        os.mkdir(tmp_path / "missing-dir")
        await committer.commit()
        on_disk = load_checkpoint(path)
        assert on_disk is not None and len(on_disk.allocations) == 1
        await committer.aclose()

    asyncio.run(main())
