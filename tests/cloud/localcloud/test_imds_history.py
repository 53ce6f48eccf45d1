"""IMDS lag and stale logic over hand-made snapshots, on an injected clock (no sleeping)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from vpccni.localcloud.imds.history import ViewHistory, merge_stale
from vpccni.localcloud.model import EniView, InstanceView


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def eni(eni_id: str, index: int, ips: tuple[str, ...], prefixes: tuple[str, ...] = ()) -> EniView:
    return EniView(
        eni_id=eni_id,
        mac=f"0a:00:00:00:00:{index:02x}",
        subnet_id="subnet-1",
        subnet_cidr="10.0.0.0/24",
        vpc_id="vpc-1",
        vpc_cidrs=("10.0.0.0/16",),
        availability_zone="us-west-2a",
        security_group_ids=("sg-1",),
        private_ips=ips,
        ipv4_prefixes=prefixes,
        status="in-use",
        instance_id="i-1",
        device_index=index,
    )


def instance(*enis: EniView) -> InstanceView:
    return InstanceView(
        instance_id="i-1",
        instance_type="m5.large",
        availability_zone="us-west-2a",
        region="us-west-2",
        subnet_id="subnet-1",
        vpc_id="vpc-1",
        state="running",
        enis=enis,
    )


PRIMARY = eni("eni-0", 0, ("10.0.0.10",))
BOOT = instance(PRIMARY)
WITH_SECOND = instance(PRIMARY, eni("eni-1", 1, ("10.0.0.20", "10.0.0.21")))


def eni_ids(view: InstanceView) -> list[str]:
    return [e.eni_id for e in view.enis]


def test_without_lag_or_stale_the_view_is_the_latest_state() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock)
    clock.advance(1)
    history.record(WITH_SECOND)
    assert history.view() == WITH_SECOND


def test_lag_shows_each_change_n_seconds_late() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock)
    history.set_lag(2.0)
    clock.advance(10)
    history.record(WITH_SECOND)  # attached at t=1010
    assert eni_ids(history.view()) == ["eni-0"]
    clock.advance(1.99)
    assert eni_ids(history.view()) == ["eni-0"]
    clock.advance(0.01)
    assert eni_ids(history.view()) == ["eni-0", "eni-1"]


def test_lag_before_the_first_snapshot_shows_the_initial_state() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock)
    history.set_lag(30)
    assert history.view() == BOOT


def test_lag_change_applies_to_what_already_happened() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock)
    clock.advance(5)
    history.record(WITH_SECOND)
    clock.advance(1)
    assert eni_ids(history.view()) == ["eni-0", "eni-1"]
    history.set_lag(3)  # the attach, 1 s ago, is not visible yet under a 3 s lag
    assert eni_ids(history.view()) == ["eni-0"]


def test_stale_keeps_a_removed_eni_for_n_seconds() -> None:
    clock = FakeClock()
    history = ViewHistory(WITH_SECOND, clock=clock)
    history.set_stale(5)
    clock.advance(10)
    history.record(BOOT)  # eni-1 detached at t=1010
    assert eni_ids(history.view()) == ["eni-0", "eni-1"]
    clock.advance(4.9)
    assert eni_ids(history.view()) == ["eni-0", "eni-1"]
    clock.advance(0.1)
    assert eni_ids(history.view()) == ["eni-0"]


def test_stale_keeps_removed_addresses_and_prefixes_after_current_ones() -> None:
    clock = FakeClock()
    full = instance(eni("eni-0", 0, ("10.0.0.10", "10.0.0.11", "10.0.0.12"), ("10.0.0.32/28",)))
    history = ViewHistory(full, clock=clock)
    history.set_stale(3)
    clock.advance(1)
    history.record(instance(eni("eni-0", 0, ("10.0.0.10", "10.0.0.13"))))  # .11 .12 and the /28 gone, .13 new
    shown = history.view().enis[0]
    assert shown.private_ips == ("10.0.0.10", "10.0.0.13", "10.0.0.11", "10.0.0.12")
    assert shown.ipv4_prefixes == ("10.0.0.32/28",)
    clock.advance(3)
    shown = history.view().enis[0]
    assert shown.private_ips == ("10.0.0.10", "10.0.0.13")
    assert shown.ipv4_prefixes == ()


def test_stale_does_not_resurrect_what_was_removed_before_the_window() -> None:
    clock = FakeClock()
    history = ViewHistory(WITH_SECOND, clock=clock)
    clock.advance(1)
    history.record(BOOT)  # eni-1 gone at t=1001
    clock.advance(10)
    history.set_stale(5)  # window [1006, 1011] never saw eni-1
    assert eni_ids(history.view()) == ["eni-0"]


def test_lag_and_stale_compose() -> None:
    clock = FakeClock()
    history = ViewHistory(WITH_SECOND, clock=clock)
    history.set_lag(2)
    history.set_stale(3)
    clock.advance(10)
    history.record(BOOT)  # removal at 1010: IMDS learns of it at 1012 and keeps it until 1015
    clock.advance(4.9)
    assert eni_ids(history.view()) == ["eni-0", "eni-1"]
    clock.advance(0.1)
    assert eni_ids(history.view()) == ["eni-0"]


def test_equal_snapshots_are_not_stored_and_old_ones_are_pruned() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock, retain_s=10)
    for _ in range(5):
        clock.advance(1)
        history.record(BOOT)
    assert len(history.snapshots()) == 1
    views = [instance(eni("eni-0", 0, ("10.0.0.10", f"10.0.0.{100 + i}"))) for i in range(50)]
    for view in views:
        clock.advance(1)
        history.record(view)
    kept = history.snapshots()
    # Only what can still be in force 10 s back is kept: the one in force at the horizon plus 10 newer.
    assert len(kept) == 11
    assert kept[-1].view == views[-1]
    assert kept[0].at <= clock.now - 10 < kept[1].at


def test_pruning_keeps_enough_history_for_a_large_lag() -> None:
    clock = FakeClock()
    history = ViewHistory(BOOT, clock=clock, retain_s=0)
    history.set_lag(100)
    for i in range(50):
        clock.advance(1)
        history.record(instance(eni("eni-0", 0, ("10.0.0.10", f"10.0.0.{100 + i}"))))
    assert history.view() == BOOT


def test_negative_settings_are_refused_with_the_name_of_the_setting() -> None:
    history = ViewHistory(BOOT, clock=FakeClock())
    with pytest.raises(ValueError, match="lag"):
        history.set_lag(-1)
    with pytest.raises(ValueError, match="stale"):
        history.set_stale(-0.5)


def test_merge_stale_orders_enis_by_device_index_and_keeps_the_base_instance_fields() -> None:
    base = replace(instance(PRIMARY), state="stopping")
    older = [instance(eni("eni-2", 2, ("10.0.0.30",))), instance(eni("eni-1", 1, ("10.0.0.20",)))]
    merged = merge_stale(base, older)
    assert eni_ids(merged) == ["eni-0", "eni-1", "eni-2"]
    assert merged.state == "stopping"
