"""Datastore: idempotent assign, unknown release, cooldown on an injected clock, reuse order, modes,
ENI/CIDR bookkeeping and the views the pool math and metrics read."""

from __future__ import annotations

import pytest

from ipamd.state.datastore import (
    AddressUnavailable,
    Allocation,
    AllocationKey,
    Datastore,
    DuplicateEni,
    InUse,
    InvalidCidr,
    UnknownEni,
)
from vpccni.wire.protocol import PodRef


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def key(n: int, ifname: str = "eth0") -> AllocationKey:
    return AllocationKey("vpccni", f"c{n}", ifname)


def store(addresses: int = 4, *, cooldown: float = 30.0, clock: FakeClock | None = None) -> Datastore:
    ds = Datastore(cooldown_s=cooldown, clock=clock or FakeClock())
    ds.add_eni("eni-a", 0, True, "10.0.0.0/24")
    ds.add_cidrs("eni-a", [f"10.0.0.{10 + i}/32" for i in range(addresses)])
    return ds


def test_assign_is_idempotent_per_key_and_distinct_across_keys() -> None:
    ds = store(4)
    first = ds.assign(key(1), pod=PodRef("default", "web-0"))
    again = ds.assign(key(1), pod=PodRef("other", "ignored"))
    assert first is not None and again == first
    others = [ds.assign(key(n)) for n in (2, 3, 4)]
    addresses = {a.address for a in [first, *others] if a is not None}
    assert addresses == {"10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"}
    assert ds.assign(key(5)) is None  # pool empty
    assert ds.get(key(1)) == first and ds.by_address(first.address) == first
    assert first.eni_id == "eni-a" and first.pod == PodRef("default", "web-0")


def test_same_container_different_ifname_is_a_different_key() -> None:
    ds = store(2)
    a = ds.assign(key(1, "eth0"))
    b = ds.assign(key(1, "eth1"))
    assert a is not None and b is not None and a.address != b.address


def test_release_unknown_key_is_none_and_changes_nothing() -> None:
    ds = store(2)
    held = ds.assign(key(1))
    assert ds.release(key(99)) is None
    assert ds.allocations() == [held]


def test_released_address_cools_down_before_reuse() -> None:
    clock = FakeClock()
    ds = store(1, cooldown=30.0, clock=clock)
    held = ds.assign(key(1))
    assert held is not None
    assert ds.release(key(1)) == held
    clock.now += 29.9
    assert ds.assign(key(2)) is None
    assert ds.stats().cooling == 1 and ds.free_count() == 0
    clock.now += 0.2
    again = ds.assign(key(2))
    assert again is not None and again.address == held.address


def test_rollback_release_skips_cooldown() -> None:
    ds = store(1, cooldown=30.0)
    ds.assign(key(1))
    ds.release(key(1), cooldown=False)
    assert ds.assign(key(2)) is not None


def test_prefers_never_used_then_longest_released() -> None:
    clock = FakeClock()
    ds = store(3, cooldown=10.0, clock=clock)
    a = ds.assign(key(1))
    b = ds.assign(key(2))
    assert a is not None and b is not None
    ds.release(key(2))  # b released first
    clock.now += 1
    ds.release(key(1))
    clock.now += 100
    never_used = ds.assign(key(3))
    assert never_used is not None and never_used.address == "10.0.0.12"
    assert ds.assign(key(4)) == Allocation(key(4), b.address, "eni-a", PodRef(), "", clock.now)
    later = ds.assign(key(5))
    assert later is not None and later.address == a.address


def test_no_address_handed_out_twice_over_many_cycles() -> None:
    clock = FakeClock()
    ds = store(8, cooldown=2.0, clock=clock)
    held: dict[AllocationKey, str] = {}
    for n in range(2000):
        clock.now += 0.37
        if n % 3 == 2 and held:
            victim = next(iter(held))
            ds.release(victim)
            del held[victim]
        got = ds.assign(key(n))
        if got is not None:
            assert got.address not in held.values()
            held[got.key] = got.address
        assert len(set(held.values())) == len(held) == ds.stats().assigned


def test_prefix_delegation_serves_prefixes_only() -> None:
    ds = Datastore(prefix_delegation=True, cooldown_s=0, clock=FakeClock())
    ds.add_eni("eni-a", 0, True)
    ds.add_cidrs("eni-a", ["10.0.1.16/28", "10.0.0.5/32"])
    got = [ds.assign(key(n)) for n in range(17)]
    assert all(g is not None for g in got[:16]) and got[16] is None
    assert {g.address for g in got[:16] if g} == {f"10.0.1.{i}" for i in range(16, 32)}
    state = ds.pool_state()
    assert [c.cidr for c in state.enis[0].cidrs] == ["10.0.1.16/28"]
    assert ds.stats().prefixes == 1 and ds.stats().total == 16
    assert ds.stale_mode_cidrs() == [("eni-a", "10.0.0.5/32")]


def test_excluded_eni_serves_no_pods() -> None:
    ds = Datastore(cooldown_s=0, clock=FakeClock())
    ds.add_eni("eni-x", 1, False, excluded=True)
    ds.add_cidrs("eni-x", ["10.0.0.7/32"])
    assert ds.assign(key(1)) is None
    assert ds.pool_state().enis[0].excluded


def test_add_cidrs_validates_and_is_idempotent() -> None:
    ds = store(1)
    assert ds.add_cidrs("eni-a", ["10.0.0.10/32"]) == []
    with pytest.raises(InvalidCidr, match="neither"):
        ds.add_cidrs("eni-a", ["10.0.0.0/24"])
    with pytest.raises(InvalidCidr, match="invalid CIDR"):
        ds.add_cidrs("eni-a", ["10.0.0.300/32"])
    ds.add_eni("eni-b", 1, False)
    with pytest.raises(InvalidCidr, match="already on ENI eni-a"):
        ds.add_cidrs("eni-b", ["10.0.0.10/32"])
    with pytest.raises(InvalidCidr, match="overlaps"):
        ds.add_cidrs("eni-b", ["10.0.0.0/28"])
    with pytest.raises(UnknownEni):
        ds.add_cidrs("eni-zz", ["10.0.9.1/32"])
    with pytest.raises(DuplicateEni):
        ds.add_eni("eni-a", 0, True)


def test_remove_refuses_assigned_and_cooling_unless_forced() -> None:
    clock = FakeClock()
    ds = store(2, cooldown=30.0, clock=clock)
    held = ds.assign(key(1))
    assert held is not None
    with pytest.raises(InUse, match=held.address):
        ds.remove_cidrs("eni-a", [f"{held.address}/32"])
    with pytest.raises(InUse):
        ds.remove_eni("eni-a")
    ds.release(key(1))
    with pytest.raises(InUse):  # cooling: a pod's flows may still point at it
        ds.remove_cidrs("eni-a", [f"{held.address}/32"])
    clock.now += 31
    assert ds.remove_cidrs("eni-a", [f"{held.address}/32"]) == []
    assert ds.cidrs_of("eni-a") == ["10.0.0.11/32"]
    other = ds.assign(key(2))
    assert ds.remove_eni("eni-a", force=True) == [other]
    assert ds.enis() == [] and ds.get(key(2)) is None and ds.by_address("10.0.0.11") is None


def test_removed_cidr_is_never_handed_out() -> None:
    ds = store(3, cooldown=0)
    ds.remove_cidrs("eni-a", ["10.0.0.10/32"])
    got = {a.address for a in (ds.assign(key(n)) for n in range(3)) if a}
    assert got == {"10.0.0.11", "10.0.0.12"}


def test_pool_state_and_stats_count_assigned_and_cooling_per_cidr() -> None:
    clock = FakeClock()
    ds = store(3, cooldown=30.0, clock=clock)
    ds.add_eni("eni-b", 1, False, seen_at=clock.now - 90)
    ds.add_cidrs("eni-b", ["10.0.1.10/32"])
    ds.assign(key(1))
    ds.assign(key(2))
    ds.release(key(2))
    state = ds.pool_state(seconds_since_last_decrease=12.0)
    assert state.seconds_since_last_decrease == 12.0
    primary, secondary = state.enis
    assert (primary.eni_id, primary.device_number, primary.is_primary) == ("eni-a", 0, True)
    assert [(c.cidr, c.assigned, c.cooling) for c in primary.cidrs] == [
        ("10.0.0.10/32", 1, 0), ("10.0.0.11/32", 0, 1), ("10.0.0.12/32", 0, 0)]
    assert secondary.age_s == 90.0
    stats = ds.stats()
    assert (stats.total, stats.assigned, stats.cooling, stats.free) == (4, 1, 1, 2)
    assert [(e.eni_id, e.total, e.assigned, e.cooling) for e in stats.enis] == [
        ("eni-a", 3, 1, 1), ("eni-b", 1, 0, 0)]
    assert ds.eni("eni-b") is not None and ds.eni("eni-b").route_table == 2  # type: ignore[union-attr]
    assert ds.eni("eni-a").route_table == 254  # type: ignore[union-attr]


def test_restore_checks_address_and_key() -> None:
    ds = store(2)
    record = Allocation(key(1), "10.0.0.11", "eni-stale", PodRef("ns", "p"), "/x", 5.0)
    restored = ds.restore(record)
    assert restored.eni_id == "eni-a" and restored.assigned_at == 5.0
    assert ds.assign(key(2)) is not None and ds.get(key(2)).address == "10.0.0.10"  # type: ignore[union-attr]
    with pytest.raises(AddressUnavailable, match="no ENI"):
        ds.restore(Allocation(key(3), "10.9.9.9", "eni-a"))
    with pytest.raises(AddressUnavailable, match="already held"):
        ds.restore(Allocation(key(3), "10.0.0.11", "eni-a"))


def test_restore_cooldown_clamps_future_times() -> None:
    clock = FakeClock()
    ds = store(1, cooldown=30.0, clock=clock)
    assert ds.restore_cooldown("10.0.0.10", clock.now + 3600)  # clock stepped back: clamp to now
    clock.now += 30.1
    assert ds.assign(key(1)) is not None
    assert not ds.restore_cooldown("10.9.9.9", clock.now)


def test_free_count_agrees_with_the_full_stats_through_a_pods_life() -> None:
    """free_count() is the readiness probe's cheap path; it must say what stats().free says in every state:
    free, assigned, cooling, cooled again, a CIDR of the other mode, an excluded ENI, a removed ENI."""
    clock = FakeClock()
    ds = store(4, clock=clock)
    ds.add_eni("eni-b", 1, False, "10.0.1.0/24")
    ds.add_cidrs("eni-b", ["10.0.1.16/28"])  # a prefix while not in prefix mode: serves no pod
    ds.add_eni("eni-x", 2, False, "10.0.2.0/24", excluded=True)
    ds.add_cidrs("eni-x", ["10.0.2.10/32"])

    def agree() -> int:
        assert ds.free_count() == ds.stats().free
        return ds.free_count()

    assert agree() == 4
    for n in (1, 2, 3):
        ds.assign(key(n))
    assert agree() == 1
    ds.release(key(1))
    ds.release(key(2), cooldown=False)
    assert agree() == 2  # one cooling, one free again at once
    clock.now += 31
    assert agree() == 3
    ds.remove_eni("eni-x")
    assert agree() == 3
