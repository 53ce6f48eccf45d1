"""Restart recovery: keep what EC2 still shows, drop and report the rest, restore cooldowns across a
restart (through a real checkpoint file), migrate aws-node's checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipamd.state.checkpoint import (
    AWS_VERSION,
    CheckpointData,
    CooldownRecord,
    encode_checkpoint,
    load_checkpoint,
    snapshot_of,
    write_atomic,
)
from ipamd.state.datastore import Allocation, AllocationKey, Datastore, DatastoreError
from ipamd.state.recovery import DescribedEni, recover
from vpccni.wire.protocol import PodRef

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


ENIS = [
    DescribedEni("eni-a", 0, True, "10.0.0.0/24", ("10.0.0.10/32", "10.0.0.11/32", "10.0.0.12/32")),
    DescribedEni("eni-b", 1, False, "10.0.0.0/24", ("10.0.0.20/32",)),
]


def key(name: str) -> AllocationKey:
    return AllocationKey("vpccni", name, "eth0")


def test_fresh_node_has_no_checkpoint() -> None:
    ds = Datastore(clock=FakeClock())
    report = recover(ds, None, ENIS)
    assert report.source_format is None and not report.needs_commit
    assert ds.stats().total == 4 and ds.allocations() == []


def test_keeps_valid_allocations_and_drops_the_rest_with_reasons() -> None:
    ds = Datastore(clock=FakeClock())
    checkpoint = CheckpointData(allocations=(
        Allocation(key("kept"), "10.0.0.10", "eni-a", PodRef("default", "web-0"), "/run/netns/a", T0 - 50),
        Allocation(key("moved"), "10.0.0.20", "eni-a", assigned_at=T0 - 40),  # now on eni-b: follows EC2
        Allocation(key("gone"), "10.0.9.9", "eni-c", assigned_at=T0 - 30),  # EC2 no longer shows it
        Allocation(key("dead-pod"), "10.0.0.11", "eni-a", assigned_at=T0 - 20),
        Allocation(key("dup-newer"), "10.0.0.10", "eni-a", assigned_at=T0 - 10),
    ))
    report = recover(ds, checkpoint, ENIS, pod_exists=lambda a: a.key.container_id != "dead-pod")
    assert [a.key.container_id for a in report.kept] == ["kept", "moved"]
    assert ds.get(key("moved")).eni_id == "eni-b"  # type: ignore[union-attr]
    reasons = {d.allocation.key.container_id: d.reason for d in report.dropped}
    assert reasons.keys() == {"gone", "dead-pod", "dup-newer"}
    assert "on no ENI" in reasons["gone"] and "no longer exists" in reasons["dead-pod"]
    assert "already held by" in reasons["dup-newer"]
    assert report.needs_commit
    assert {a.address for a in ds.allocations()} == {"10.0.0.10", "10.0.0.20"}
    # The dropped pod's address is free again; no address is handed out twice.
    fresh = [ds.assign(key(f"new{i}")) for i in range(3)]
    assert sorted(a.address for a in fresh if a) == ["10.0.0.11", "10.0.0.12"]


def test_recovery_needs_an_empty_datastore() -> None:
    ds = Datastore(clock=FakeClock())
    ds.add_eni("eni-a", 0, True)
    with pytest.raises(DatastoreError):
        recover(ds, None, ENIS)


def test_cooldown_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "ipam.json")
    clock = FakeClock()
    before = Datastore(cooldown_s=30, clock=clock)
    recover(before, None, [DescribedEni("eni-a", 0, True, "", ("10.0.0.10/32",))])
    before.assign(key("a"))
    before.release(key("a"))
    write_atomic(path, encode_checkpoint(snapshot_of(before, clock()), clock()))

    clock.now += 20  # ipamd restarts 20 s later
    after = Datastore(cooldown_s=30, clock=clock)
    report = recover(after, load_checkpoint(path), [DescribedEni("eni-a", 0, True, "", ("10.0.0.10/32",))])
    assert report.cooldown_restored == 1 and not report.needs_commit
    assert after.assign(key("b")) is None  # still cooling after the restart
    assert after.pool_state().enis[0].cidrs[0].cooling == 1
    clock.now += 10.1
    got = after.assign(key("b"))
    assert got is not None and got.address == "10.0.0.10"


def test_expired_or_unknown_cooldowns_are_dropped(tmp_path: Path) -> None:
    clock = FakeClock()
    checkpoint = CheckpointData(cooldown=(
        CooldownRecord("10.0.0.10", T0 - 100),
        CooldownRecord("10.7.7.7", T0 - 1),
    ))
    ds = Datastore(cooldown_s=30, clock=clock)
    report = recover(ds, checkpoint, ENIS)
    assert (report.cooldown_restored, report.cooldown_dropped) == (0, 2)


def test_aws_node_checkpoint_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ipam.json"
    path.write_text(json.dumps({"version": AWS_VERSION, "allocations": [
        {"networkName": "aws-cni", "containerID": "abc", "ifName": "eth0", "ipv4": "10.0.0.11",
         "allocationTimestamp": int(T0 * 1e9), "metadata": {"k8sPodNamespace": "ns", "k8sPodName": "p"}},
    ]}))
    ds = Datastore(clock=FakeClock())
    report = recover(ds, load_checkpoint(str(path)), ENIS)
    assert report.source_format == AWS_VERSION and report.needs_commit  # rewrite in our format
    held = ds.get(AllocationKey("aws-cni", "abc", "eth0"))
    assert held is not None and held.address == "10.0.0.11" and held.eni_id == "eni-a"
    assert held.pod == PodRef("ns", "p")
