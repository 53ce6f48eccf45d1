"""ENIs that serve no pods (their subnet is tagged kubernetes.io/role/cni=0), as aws-node treats them: free
addresses go back, and the ENI is freed once it holds no pod (aws's secondary_eni_exclusion_focused_test.go
removes such an ENI once it has no pods). Ours keeps its one safety: nothing cooling goes back."""

from __future__ import annotations

from ipamd.pool import BLOCKED_ENI_LIMIT, PoolTargets, PoolTimers, decide
from tests.unit.pool.poolsim import SimNode
from tests.unit.pool.test_pool_rules import M5_LARGE, T3_SMALL, WET1, pool, sip, wit

TIMERS = PoolTimers()  # 30 s between releases, ENIs younger than 60 s are kept


def test_an_idle_excluded_eni_is_freed_at_target_in_warm_eni_mode():
    # The pod pool is exactly at WARM_ENI_TARGET=1 (9 available): nothing of it may go. The excluded ENI
    # counts in no target: it only holds a slot, so it goes.
    state = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 4, excluded=True))
    d = decide(state, WET1, M5_LARGE, TIMERS)
    assert d.free_eni == "eni-1" and d.release == ()
    assert "eni-1 serves no pods (excluded) and is idle: freeing it" in d.notes


def test_an_excluded_eni_with_a_pod_stays_and_gives_back_its_free_addresses():
    state = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 4, assigned=1, excluded=True))
    d = decide(state, WET1, M5_LARGE, TIMERS)
    assert d.free_eni is None
    assert d.release == (("eni-1", ("10.1.0.11/32", "10.1.0.12/32", "10.1.0.13/32")),)


def test_cooling_addresses_of_an_excluded_eni_stay_until_cooled():
    state = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 3, cooling=1, excluded=True))
    d = decide(state, WET1, M5_LARGE, TIMERS)
    assert d.free_eni is None
    assert d.release == (("eni-1", ("10.1.0.11/32", "10.1.0.12/32")),)


def test_releases_keep_the_spacing_and_young_enis_stay():
    spaced = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 4, assigned=1, excluded=True), since_decrease=5.0)
    assert decide(spaced, WET1, M5_LARGE, TIMERS).release == ()
    young = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 4, excluded=True, age=10.0))
    d = decide(young, WET1, M5_LARGE, TIMERS)
    assert d.free_eni is None and d.release == (("eni-1", tuple(f"10.1.0.{i}/32" for i in range(10, 14))),)


def test_the_primary_is_never_freed_nor_stripped_even_when_excluded():
    # Custom networking's primary also serves no pods; it stays as it is.
    state = pool(sip("eni-0", 0, 3, excluded=True), sip("eni-1", 1, 9, 0))
    d = decide(state, WET1, M5_LARGE, TIMERS)
    assert d.free_eni is None and all(eni != "eni-0" for eni, _ in d.release)


def test_when_growth_is_blocked_by_the_eni_limit_the_excluded_eni_makes_room():
    # t3.small: 3 ENIs. Pods fill both pod ENIs; the third slot is held by an idle excluded ENI.
    # (The simulator names the ENIs it creates eni-1, eni-2, ...: ours are named apart.)
    state = pool(sip("eni-0", 0, 3, 3), sip("eni-a", 1, 3, 3), sip("eni-x", 2, 2, excluded=True))
    d = decide(state, WET1, T3_SMALL, TIMERS)
    assert d.short == 3 and d.blocked == BLOCKED_ENI_LIMIT and (d.assign, d.new_eni) == ((), 0)
    assert d.free_eni == "eni-x"
    # ... and the next passes grow into the freed slot.
    node = SimNode.from_state(state, T3_SMALL, WET1, TIMERS)
    node.settle()
    assert "eni-x" not in node.enis and node.cidr_counts() == [3, 3, 3] and node.available() == 3


def test_a_pool_that_can_grow_grows_first_then_frees_the_excluded_eni():
    state = pool(sip("eni-0", 0, 9, 9), sip("eni-x", 1, 2, excluded=True))
    d = decide(state, WET1, M5_LARGE, TIMERS)
    assert d.new_eni == 9 and d.free_eni is None  # never grow and shrink in one decision
    node = SimNode.from_state(state, M5_LARGE, WET1, TIMERS)
    node.settle()
    assert "eni-x" not in node.enis and node.cidr_counts() == [9, 9]


def test_ip_target_mode_frees_it_too():
    state = pool(sip("eni-0", 0, 5, 2), sip("eni-1", 1, 1, excluded=True))
    d = decide(state, wit(3), M5_LARGE, TIMERS)
    assert d.free_eni == "eni-1"


def test_aws_shrink_and_ours_agree_on_excluded_enis():
    state = pool(sip("eni-0", 0, 9, 0), sip("eni-1", 1, 4, excluded=True))
    assert decide(state, PoolTargets(eni_free_margin=0.0), M5_LARGE, TIMERS).free_eni == "eni-1"
