"""The pool rules one at a time, on hand-built states: table-driven cases for decide() and its helpers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipamd.pool import (
    BLOCKED_ENI_LIMIT,
    BLOCKED_MAX_PODS,
    CidrState,
    Decision,
    EniState,
    NodeCapacity,
    PoolState,
    PoolStats,
    PoolTargets,
    PoolTimers,
    decide,
    excess,
    pool_stats,
    shortfall,
)
from vpccni.wire.protocol import NoIpReason

T3_SMALL = NodeCapacity(max_enis=3, slots_per_eni=4, max_pods=11)  # 3 pod addresses per ENI
M5_LARGE = NodeCapacity(max_enis=3, slots_per_eni=10, max_pods=29)  # 9 per ENI
OLD = 3600.0


def sip(eni_id: str, device: int, ips: int, assigned: int = 0, cooling: int = 0, *, age: float = OLD,
        excluded: bool = False) -> EniState:
    """An ENI with ``ips`` /32s: the first ``assigned`` held by pods, the next ``cooling`` cooling."""
    assert assigned + cooling <= ips
    cidrs = tuple(
        CidrState(f"10.{device}.0.{i + 10}/32", assigned=int(i < assigned),
                  cooling=int(assigned <= i < assigned + cooling))
        for i in range(ips)
    )
    return EniState(eni_id, device, device == 0, age, cidrs, excluded)


def pd(eni_id: str, device: int, prefixes: list[tuple[int, int]], *, age: float = OLD) -> EniState:
    """An ENI with one /28 per (assigned, cooling) pair."""
    cidrs = tuple(CidrState(f"10.{device}.{i}.0/28", a, c) for i, (a, c) in enumerate(prefixes))
    return EniState(eni_id, device, device == 0, age, cidrs)


def pool(*enis: EniState, since_decrease: float = float("inf"), peak: int = 0) -> PoolState:
    return PoolState(enis, seconds_since_last_decrease=since_decrease, peak_in_use=peak)


WET1 = PoolTargets()
MARGINLESS = PoolTargets(eni_free_margin=0.0)
PD1 = PoolTargets(prefix_delegation=True, warm_prefix_target=1)
PD_CAP = NodeCapacity(max_enis=3, slots_per_eni=4, max_pods=110)


def wit(w: int, m: int = 0, *, prefix: bool = False) -> PoolTargets:
    return PoolTargets(warm_ip_target=w, minimum_ip_target=m, prefix_delegation=prefix)


# (name, state, targets, capacity, expected Decision fields)
CASES: list[tuple[str, PoolState, PoolTargets, NodeCapacity, dict[str, object]]] = [
    # --- the cooldown fix (aws #2896, #1700) --------------------------------------------------
    ("all free addresses cooling: aws would call the pool full, we grow",
     pool(sip("eni-0", 0, 3, 0, 3)), WET1, T3_SMALL, {"new_eni": 3, "short": 3}),
    ("aws #2896's numbers: WIT=2 MIT=23, 19 assigned + 4 cooling of 23",
     pool(sip("eni-0", 0, 9, 9), sip("eni-1", 1, 9, 9), sip("eni-2", 2, 5, 1, 4)), wit(2, 23), M5_LARGE,
     {"assign": (("eni-2", 2),), "short": 2}),
    # --- growth: fill existing ENIs first, one call each, and a new ENI in the same decision ----
    ("fresh node, WARM_ENI_TARGET=1: fill the primary", pool(sip("eni-0", 0, 0)), WET1, M5_LARGE,
     {"assign": (("eni-0", 9),), "short": 9}),
    ("WARM_ENI_TARGET fills a touched ENI to capacity (one call either way)",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 1)), WET1, T3_SMALL,
     {"assign": (("eni-1", 2),), "short": 2}),
    ("existing room is not enough: fill it AND create a full ENI",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 2, 2)), WET1, T3_SMALL,
     {"assign": (("eni-1", 1),), "new_eni": 3, "short": 3}),
    ("WARM_IP_TARGET spreads exactly the shortfall over ENIs with room, then a new ENI",
     pool(sip("eni-0", 0, 7, 7), sip("eni-1", 1, 7, 7)), wit(5), M5_LARGE,
     {"assign": (("eni-0", 2), ("eni-1", 2)), "new_eni": 1, "short": 5}),
    ("WARM_ENI_TARGET=0 still never leaves zero available",
     pool(sip("eni-0", 0, 9, 9)), PoolTargets(warm_eni_target=0), M5_LARGE, {"new_eni": 9, "short": 1}),
    ("WARM_ENI_TARGET=0 with one address free: nothing", pool(sip("eni-0", 0, 9, 8)),
     PoolTargets(warm_eni_target=0), M5_LARGE, {"over": 1}),
    ("MINIMUM_IP_TARGET alone caps the pool, as aws keeps on purpose (#2659)",
     pool(sip("eni-0", 0, 3, 3)), wit(0, 3), T3_SMALL, {}),
    # --- limits and the reasons a short pool gives ---------------------------------------------
    ("MAX_ENI=1 and the primary full: blocked by the ENI limit",
     pool(sip("eni-0", 0, 3, 3)), WET1, replace(T3_SMALL, max_enis=1),
     {"short": 3, "blocked": BLOCKED_ENI_LIMIT}),
    ("the last ENI slot is used now and still short: blocked",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 3, 3)), wit(5), T3_SMALL,
     {"new_eni": 3, "short": 5, "blocked": BLOCKED_ENI_LIMIT}),
    ("a new ENI now and room for more later: not blocked",
     pool(sip("eni-0", 0, 3, 3)), wit(5), NodeCapacity(max_enis=4, slots_per_eni=4, max_pods=20),
     {"new_eni": 3, "short": 5}),
    ("growth stops at max pods", pool(sip("eni-0", 0, 0)), wit(0, 9), replace(T3_SMALL, max_pods=5),
     {"assign": (("eni-0", 3),), "new_eni": 2, "short": 9, "blocked": BLOCKED_MAX_PODS}),
    ("at max pods nothing grows", pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 2, 2)), WET1,
     replace(T3_SMALL, max_pods=5), {"short": 3, "blocked": BLOCKED_MAX_PODS}),
    ("prefix mode may cross max pods with the last prefix (else pod 17..20 never fit)",
     pool(pd("eni-0", 0, [(16, 0)])), PD1, replace(PD_CAP, max_pods=20),
     {"assign": (("eni-0", 1),), "short": 16}),
    ("prefix mode at max pods", pool(pd("eni-0", 0, [(16, 0), (16, 0)])), PD1, replace(PD_CAP, max_pods=20),
     {"short": 16, "blocked": BLOCKED_MAX_PODS}),
    # --- custom networking: the primary ENI serves no pods --------------------------------------
    ("custom networking, fresh node: a secondary ENI, never the primary",
     pool(sip("eni-0", 0, 0)), WET1, replace(T3_SMALL, primary_serves_pods=False),
     {"new_eni": 3, "short": 3}),
    ("custom networking: the primary's own addresses do not count",
     pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3, 1)), WET1, replace(T3_SMALL, primary_serves_pods=False),
     {"new_eni": 3, "short": 1}),
    ("an excluded ENI is neither counted nor filled",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 0, excluded=True)), WET1, T3_SMALL,
     {"new_eni": 3, "short": 3}),
    # --- a subnet EC2 called full: its ENIs are not filled, growth goes to a new ENI ------------
    ("the primary's subnet is full: a new ENI instead of the primary's room",
     pool(replace(sip("eni-0", 0, 0), subnet_full=True)), WET1, M5_LARGE, {"new_eni": 9, "short": 9}),
    ("only the ENI in the full subnet is skipped",
     pool(replace(sip("eni-0", 0, 7, 7), subnet_full=True), sip("eni-1", 1, 7, 7)), wit(5), M5_LARGE,
     {"assign": (("eni-1", 2),), "new_eni": 3, "short": 5}),
    # --- releases: only free CIDRs, spaced, grouped per ENI -------------------------------------
    ("WARM_IP_TARGET over target: release the excess, from the secondary ENI first",
     pool(sip("eni-0", 0, 5, 4), sip("eni-1", 1, 3, 1)), wit(1), M5_LARGE,
     {"release": (("eni-1", ("10.1.0.11/32", "10.1.0.12/32")),), "over": 2}),
    ("release waits for the decrease interval", pool(sip("eni-0", 0, 5, 4), sip("eni-1", 1, 3, 1),
                                                      since_decrease=29.0), wit(1), M5_LARGE, {"over": 2}),
    ("cooling addresses are never released (aws would)",
     pool(sip("eni-0", 0, 6, 1, 2)), wit(1), M5_LARGE,
     {"release": (("eni-0", ("10.0.0.13/32", "10.0.0.14/32")),), "over": 2}),
    ("MINIMUM_IP_TARGET floors the release", pool(sip("eni-0", 0, 8, 2)), wit(1, 7), M5_LARGE,
     {"release": (("eni-0", ("10.0.0.12/32",)),), "over": 1}),
    ("WARM_ENI_TARGET never releases single addresses",
     pool(sip("eni-0", 0, 9, 1), sip("eni-1", 1, 9, 1), sip("eni-2", 2, 9, 1)), WET1, M5_LARGE,
     {"over": 15}),
    ("WARM_PREFIX_TARGET: free prefixes beyond the target go back, in one call if one ENI has them",
     pool(pd("eni-0", 0, [(3, 0), (0, 0), (0, 0)]), pd("eni-1", 1, [(1, 0), (0, 0)])), PD1, PD_CAP,
     {"release": (("eni-0", ("10.0.1.0/28", "10.0.2.0/28")),), "over": 32}),
    ("WARM_PREFIX_TARGET=0 keeps the one prefix it grew for 'never zero available'",
     pool(pd("eni-0", 0, [(0, 0)])), PoolTargets(prefix_delegation=True), PD_CAP, {}),
    ("WARM_PREFIX_TARGET=0 gives back all but that one",
     pool(pd("eni-0", 0, [(0, 0), (0, 0), (0, 0)])), PoolTargets(prefix_delegation=True), PD_CAP,
     {"release": (("eni-0", ("10.0.0.0/28", "10.0.1.0/28")),), "over": 32}),
    ("a prefix with a cooling address is not free", pool(pd("eni-0", 0, [(3, 0), (0, 1), (0, 0)])),
     PD1, PD_CAP, {}),
    ("prefix mode with IP targets keeps ceil((in use + WIT) / 16) prefixes",
     pool(pd("eni-0", 0, [(10, 0), (0, 0), (0, 0)])), wit(7, prefix=True), PD_CAP,
     {"release": (("eni-0", ("10.0.1.0/28",)),), "over": 16}),
    # --- freeing ENIs ----------------------------------------------------------------------------
    ("an idle, old, unneeded ENI is freed; the rest of the excess is released elsewhere",
     pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3)), wit(1), T3_SMALL,
     {"free_eni": "eni-1", "release": (("eni-0", ("10.0.0.10/32", "10.0.0.11/32")),), "over": 5}),
    ("a young ENI is kept (its addresses may go)", pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3, age=59.0)),
     wit(1), T3_SMALL, {"release": (("eni-1", ("10.1.0.10/32", "10.1.0.11/32", "10.1.0.12/32")),
                                     ("eni-0", ("10.0.0.10/32", "10.0.0.11/32"))), "over": 5}),
    ("an ENI with a cooling address is kept",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 3, 0, 1)), wit(1), T3_SMALL,
     {"release": (("eni-1", ("10.1.0.11/32",)),), "over": 1}),
    ("an ENI needed for WARM_IP_TARGET is kept", pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 3)), wit(2),
     T3_SMALL, {"release": (("eni-1", ("10.1.0.10/32",)),), "over": 1}),
    ("an ENI needed for MINIMUM_IP_TARGET is kept", pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3)), wit(1, 6),
     T3_SMALL, {}),
    ("the primary ENI is never freed, however idle", pool(sip("eni-0", 0, 3)), wit(1), T3_SMALL,
     {"release": (("eni-0", ("10.0.0.10/32", "10.0.0.11/32")),), "over": 2}),
    ("at most one ENI per decision: the newest goes first",
     pool(sip("eni-0", 0, 3, 3), sip("eni-1", 1, 3), sip("eni-2", 2, 3)), MARGINLESS, T3_SMALL,
     {"free_eni": "eni-2", "over": 3}),
    ("aws's gate for WARM_ENI_TARGET: a whole spare ENI beyond the target",
     pool(sip("eni-0", 0, 9, 9), sip("eni-1", 1, 9), sip("eni-2", 2, 9)), MARGINLESS, M5_LARGE,
     {"free_eni": "eni-2", "over": 9}),
    ("our default margin keeps it until half an ENI more is free",
     pool(sip("eni-0", 0, 9, 9), sip("eni-1", 1, 9), sip("eni-2", 2, 9)), WET1, M5_LARGE, {"over": 9}),
    ("the margin is met", pool(sip("eni-0", 0, 9, 4), sip("eni-1", 1, 9), sip("eni-2", 2, 9)), WET1,
     M5_LARGE, {"free_eni": "eni-2", "over": 14}),
    ("an ENI with fewer addresses goes first (less to re-create)",
     pool(sip("eni-0", 0, 9, 4), sip("eni-1", 1, 5), sip("eni-2", 2, 9)), MARGINLESS, M5_LARGE,
     {"free_eni": "eni-1", "over": 10}),
    ("WARM_PREFIX_TARGET: an ENI whose prefixes are all beyond the target is freed",
     pool(pd("eni-0", 0, [(5, 0), (0, 0)]), pd("eni-1", 1, [(0, 0)])), PD1, PD_CAP,
     {"free_eni": "eni-1", "over": 16}),
    # --- the stabilization window: shrink as if the recent peak were in use ----------------------
    ("a recent peak keeps the ENI and the addresses",
     pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3), peak=5), wit(1), T3_SMALL, {}),
    ("a recent peak below what is in use changes nothing",
     pool(sip("eni-0", 0, 5, 4), sip("eni-1", 1, 3, 1), peak=2), wit(1), M5_LARGE,
     {"release": (("eni-1", ("10.1.0.11/32", "10.1.0.12/32")),), "over": 2}),
    ("the peak never delays growth", pool(sip("eni-0", 0, 3, 3), peak=50), WET1, T3_SMALL,
     {"new_eni": 3, "short": 3}),
]


@pytest.mark.parametrize(("state", "targets", "capacity", "expected"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(state, targets, capacity, expected):
    d = decide(state, targets, capacity)
    got = {k: getattr(d, k) for k in ("assign", "new_eni", "release", "free_eni", "short", "over", "blocked")}
    want = {"assign": (), "new_eni": 0, "release": (), "free_eni": None, "short": 0, "over": 0, "blocked": ""}
    want.update(expected)
    assert got == want, d.notes


def test_blocked_reasons_are_protocol_values():
    assert NoIpReason.ENI_LIMIT.value == BLOCKED_ENI_LIMIT
    assert NoIpReason.MAX_PODS.value == BLOCKED_MAX_PODS


def test_release_spacing_is_a_note_not_silence():
    d = decide(pool(sip("eni-0", 0, 6), since_decrease=10.0), wit(1), M5_LARGE)
    assert not d.changes_pool
    assert any("spacing" in n for n in d.notes)


def test_custom_timers_are_honoured():
    state = pool(sip("eni-0", 0, 3), sip("eni-1", 1, 3, age=20.0), since_decrease=10.0)
    d = decide(state, wit(1), T3_SMALL, PoolTimers(decrease_interval_s=5.0, min_eni_age_s=15.0))
    assert d.free_eni == "eni-1" and d.release == (("eni-0", ("10.0.0.10/32", "10.0.0.11/32")),)


@pytest.mark.parametrize(("decision", "calls"), [
    (Decision(), 0),
    (Decision(assign=(("a", 3), ("b", 1))), 2),
    (Decision(new_eni=5), 3),
    (Decision(assign=(("a", 1),), new_eni=2), 4),
    (Decision(release=(("a", ("x",)),), free_eni="b"), 3),
])
def test_mutating_calls(decision, calls):
    assert decision.mutating_calls == calls
    assert decision.changes_pool == (calls > 0)


def test_pool_stats_counts_only_pod_enis_and_keeps_cooling_apart():
    state = pool(sip("eni-0", 0, 4, 1, 1), sip("eni-1", 1, 3, 0, 2), sip("eni-2", 2, 5, excluded=True))
    s = pool_stats(state)
    counts = (s.total, s.assigned, s.cooling, s.available, s.cidrs, s.free_cidrs, s.enis)
    assert counts == (7, 1, 3, 3, 7, 3, 2)
    cn = pool_stats(state, primary_serves_pods=False)
    assert (cn.total, cn.available, cn.enis) == (3, 1, 1)


def test_pool_stats_in_prefix_mode():
    s = pool_stats(pool(pd("eni-0", 0, [(16, 0), (3, 2), (0, 0)])))
    assert (s.total, s.available, s.cidrs, s.free_prefixes) == (48, 27, 3, 1)


# (stats as (total, assigned, cooling, cidrs, free_cidrs), targets, capacity, shortfall, excess)
TARGET_MATH = [
    ((3, 0, 0, 3, 3), WET1, T3_SMALL, 0, 0),
    ((3, 1, 0, 3, 2), WET1, T3_SMALL, 1, 0),
    ((9, 0, 9, 9, 0), WET1, M5_LARGE, 9, 0),
    ((10, 7, 0, 10, 3), wit(5, 10), M5_LARGE, 2, 0),
    ((10, 2, 0, 10, 8), wit(5, 10), M5_LARGE, 0, 0),
    ((20, 2, 1, 20, 17), wit(5, 10), M5_LARGE, 0, 10),
    ((32, 0, 0, 2, 2), wit(7, 20, prefix=True), PD_CAP, 0, 0),
    ((48, 17, 0, 3, 1), wit(7, 20, prefix=True), PD_CAP, 0, 1),
    ((48, 17, 15, 3, 1), wit(7, 20, prefix=True), PD_CAP, 0, 0),
    ((16, 5, 0, 1, 0), PD1, PD_CAP, 5, 0),
    ((48, 5, 0, 3, 2), PD1, PD_CAP, 0, 1),
    ((0, 0, 0, 0, 0), PoolTargets(prefix_delegation=True, warm_prefix_target=0), PD_CAP, 1, 0),
]


@pytest.mark.parametrize(("counts", "targets", "capacity", "short", "over"), TARGET_MATH)
def test_shortfall_and_excess(counts, targets, capacity, short, over):
    total, assigned, cooling, cidrs, free = counts
    stats = PoolStats(total, assigned, cooling, cidrs, free, enis=1)
    assert shortfall(stats, targets, capacity) == short
    assert excess(stats, targets) == over
