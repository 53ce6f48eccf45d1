"""Batches (VPCCNI_IP_BATCH) and fixed interfaces (Azure), over tables of cases and the simulator.

Azure CNS's rules are the reference (see ipamd.pool.batch): with B=16 and WARM_IP_TARGET = B/2 = 8 the
pool a burst of U pods settles at is B x ceil(0.5 + U/B) (CNS's own worked example: U=25 gives 48),
growth and release move whole batches, and no fixed pod count makes the pool grow and shrink in turn.
On a node whose interfaces are fixed the math never plans a new or a freed interface, and says the pool
is at its interface limit when every NIC is full.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from ipamd.pool import (
    CidrState,
    Decision,
    EniState,
    NodeCapacity,
    PoolState,
    PoolTargets,
    PoolTimers,
    decide,
    pool_stats,
)
from ipamd.pool.batch import batched_goal, batched_release, batching, single_step
from tests.unit.pool.poolsim import SimNode, fresh_node

# A Standard_D4s_v5 booted with one NIC: 256 IP configurations, the primary's is the node's, 250 pods.
AZURE_1NIC = NodeCapacity(max_enis=1, slots_per_eni=256, max_pods=250, interfaces_fixed=True)
# Booted with two NICs: 256 per VM over both, less two primaries = 254, capped at 250 pods.
AZURE_2NIC = NodeCapacity(max_enis=2, slots_per_eni=256, max_pods=250, interfaces_fixed=True)
CNS = PoolTargets(warm_ip_target=8, ip_batch=16)
NO_WAIT = PoolTimers(decrease_interval_s=0.0, min_eni_age_s=0.0)


def cns_target(used: int, batch: int = 16, mf: float = 0.5) -> int:
    """Azure CNS's idempotent pool size for ``used`` addresses in use."""
    return batch * math.ceil(mf + used / batch)


# (targets, pods, pool size once settled, NIC writes from a bare node to that pool, burst or one by one)
SETTLE_TABLE = [
    (CNS, 0, 16, 1),
    (CNS, 1, 16, 1),
    (CNS, 8, 16, 1),
    (CNS, 9, 32, 2),
    (CNS, 25, 48, 3),  # CNS's worked example
    (CNS, 30, 48, 3),
    (CNS, 100, 112, 7),
    (CNS, 242, 250, 16),  # the last step is cut at max pods: 240 + 10
    (PoolTargets(warm_ip_target=8, minimum_ip_target=40, ip_batch=16), 0, 48, 1),  # MIT 40 -> whole batches
    (PoolTargets(warm_ip_target=0, minimum_ip_target=20, ip_batch=16), 5, 32, 1),
    (PoolTargets(warm_ip_target=4, ip_batch=10), 17, 30, 3),
]


@pytest.mark.parametrize(("targets", "pods", "total", "writes"), SETTLE_TABLE)
@pytest.mark.parametrize("arrivals", ["burst", "one_tick_per_pod"])
def test_a_burst_settles_at_cns_pool_size_in_whole_batches(targets, pods, total, writes, arrivals):
    node = fresh_node(AZURE_1NIC, targets, pods, tick_every_pod=arrivals == "one_tick_per_pod")
    assert node.total_addresses() == total
    if targets == CNS and pods <= 240:
        assert total == cns_target(pods)
    assert node.calls["AssignPrivateIpAddresses"] == writes, node.decisions
    assert set(node.calls) <= {"AssignPrivateIpAddresses"}, "nothing but address writes on a fixed NIC"
    for d in node.decisions:
        for _, count in d.assign:
            assert count % targets.ip_batch == 0 or node.total_addresses() == AZURE_1NIC.max_pods


def test_without_a_batch_each_pod_can_cost_a_write():
    """The same node with aws's rules (WARM_IP_TARGET=8, no batch): one write per pod arriving alone."""
    unbatched = fresh_node(AZURE_1NIC, PoolTargets(warm_ip_target=8), 30, tick_every_pod=True)
    batched = fresh_node(AZURE_1NIC, CNS, 30, tick_every_pod=True)
    assert unbatched.calls["AssignPrivateIpAddresses"] == 31  # the cold start, then every pod
    assert batched.calls["AssignPrivateIpAddresses"] == 3


@pytest.mark.parametrize(("pods", "total"), [(0, 16), (9, 32), (25, 48), (40, 64), (100, 112)])
def test_when_the_burst_leaves_whole_batches_go_back_inside_cns_band(pods, total):
    node = fresh_node(AZURE_1NIC, CNS, 120)
    for pod in list(node.pods)[: 120 - pods]:
        node.del_pod(pod)
    node.settle()
    # CNS gives back while more than Mf x B = 24 are free: the pool ends between its two thresholds.
    assert node.total_addresses() == total and 8 < total - pods <= 24
    released = [c for d in node.decisions for _, cidrs in d.release for c in [len(cidrs)]]
    assert released and all(n % 16 == 0 for n in released)


def pool(total: int, assigned: int, cooling: int = 0, nics: int = 1) -> PoolState:
    """``total`` addresses spread over ``nics`` NICs (first NICs first), the first ones in use."""
    cidrs = [CidrState(f"10.0.{i // 250}.{i % 250 + 1}/32", 1 if i < assigned else 0,
                       1 if assigned <= i < assigned + cooling else 0) for i in range(total)]
    per = -(-total // nics) if total else 0
    enis = tuple(EniState(f"nic-{n}", n, n == 0, 1e6, tuple(cidrs[n * per:(n + 1) * per]))
                 for n in range(nics))
    return PoolState(enis)


GRID = [(total, assigned, cooling, wit, mit, batch)
        for total in (0, 5, 16, 23, 24, 25, 32, 40, 47, 48, 49, 64, 100)
        for assigned in (0, 1, 7, 8, 9, 16, 17, 24, 25, 40)
        for cooling in (0, 3)
        for wit, mit in ((8, 0), (0, 24), (8, 40), (3, 0), (20, 0))
        for batch in (4, 16)
        if assigned + cooling <= total]


@pytest.mark.parametrize(("total", "assigned", "cooling", "wit", "mit", "batch"), GRID)
def test_grow_and_release_never_chase_each_other(total, assigned, cooling, wit, mit, batch):
    targets = PoolTargets(warm_ip_target=wit, minimum_ip_target=mit, ip_batch=batch)
    node = SimNode.from_state(pool(total, assigned, cooling), AZURE_1NIC, targets, NO_WAIT)
    first = node.tick()
    assert not (first.assign and first.release)
    second = decide(node.state(), targets, AZURE_1NIC, NO_WAIT)
    if first.assign:
        assert not second.release, f"grew, then would release: {first} -> {second}"
        assert sum(n for _, n in first.assign) % batch == 0 or node.total_addresses() == AZURE_1NIC.max_pods
    if first.release:
        assert not second.assign, f"released, then would grow: {first} -> {second}"
        released = sum(len(c) for _, c in first.release)
        assert released % batch == 0
        stats = pool_stats(node.state())
        room = 1 if wit else 0  # without WARM_IP_TARGET there is no free-side threshold to keep off
        assert stats.available >= wit + room and stats.total >= mit, "a release leaves the targets met"
    assert first.new_eni == 0 and first.free_eni is None, "a fixed NIC set is never changed"


@pytest.mark.parametrize(("free", "released"), [(8, 0), (24, 0), (25, 16), (40, 16), (41, 32), (57, 48)])
def test_release_threshold_is_warm_target_plus_one_batch(free, released):
    stats = pool_stats(pool(free + 10, 10))
    assert batched_release(free, stats, CNS) == released


def test_a_batch_applies_to_ip_targets_in_secondary_ip_mode_only():
    assert batching(CNS) == 16
    assert batching(PoolTargets(warm_eni_target=1, ip_batch=16)) == 0, "WARM_ENI_TARGET mode: whole ENIs"
    assert batching(PoolTargets(warm_ip_target=8, ip_batch=16, prefix_delegation=True)) == 0
    assert batching(PoolTargets(warm_ip_target=8)) == 0
    assert batched_goal(5, PoolTargets(warm_ip_target=8)) == 5
    assert [batched_goal(g, CNS) for g in (0, 1, 16, 17, 33)] == [0, 16, 16, 32, 48]


SMALL_STATES = [pool(t, a, c) for t, a, c in itertools.product((0, 9, 30), (0, 5, 9), (0, 2)) if a + c <= t]
AWS_TARGETS = [PoolTargets(warm_ip_target=5), PoolTargets(warm_ip_target=2, minimum_ip_target=12),
               PoolTargets(warm_eni_target=1)]


@pytest.mark.parametrize("state", SMALL_STATES)
@pytest.mark.parametrize("targets", AWS_TARGETS)
def test_a_batch_outside_ip_targets_or_zero_changes_nothing(state, targets):
    aws = NodeCapacity(max_enis=3, slots_per_eni=10, max_pods=29)
    unbatched = decide(state, targets, aws, NO_WAIT)
    assert unbatched == decide(state, replace(targets, ip_batch=0), aws, NO_WAIT)
    if not targets.ip_targets_defined:
        assert unbatched == decide(state, replace(targets, ip_batch=16), aws, NO_WAIT)


def test_fixed_nics_full_is_the_interface_limit_and_plans_no_new_nic():
    full = pool(250, 250)
    d = decide(full, CNS, AZURE_1NIC)
    assert (d.assign, d.new_eni, d.blocked) == ((), 0, "max_pods")
    small = NodeCapacity(max_enis=1, slots_per_eni=21, max_pods=250, interfaces_fixed=True)
    d = decide(pool(20, 20), CNS, small)
    assert (d.assign, d.new_eni, d.blocked) == ((), 0, "eni_limit")
    d = decide(pool(12, 10), CNS, small)
    assert d.assign == (("nic-0", 8),) and d.blocked == "eni_limit", "the room left, then blocked"


def test_growth_moves_to_the_second_nic_only_when_the_first_is_full_and_within_the_vm_cap():
    node = fresh_node(AZURE_2NIC, CNS, 250)
    per_nic = node.cidr_counts()
    assert per_nic == [250], "the first NIC holds the whole pod cap; the second NIC never gets one"
    two = SimNode.from_state(pool(300, 0, nics=2), AZURE_2NIC, CNS, NO_WAIT)
    d = two.tick()
    assert d.free_eni is None and sum(len(c) for _, c in d.release) % 16 == 0


def test_an_idle_second_nic_is_never_freed():
    idle_second = PoolState((EniState("nic-0", 0, True, 1e6, (CidrState("10.0.0.1/32", 1),)),
                             EniState("nic-1", 1, False, 1e6, tuple(CidrState(f"10.0.1.{i}/32")
                                                                    for i in range(1, 40)))))
    for targets in (CNS, PoolTargets(warm_ip_target=1)):
        d = decide(idle_second, targets, AZURE_2NIC, NO_WAIT)
        assert d.free_eni is None and d.release


@pytest.mark.parametrize(("decision", "expected"), [
    (Decision(assign=(("nic-0", 16),)), Decision(assign=(("nic-0", 1),))),
    (Decision(assign=(("nic-0", 5), ("nic-1", 11))), Decision(assign=(("nic-0", 1),))),
    (Decision(new_eni=9), Decision(new_eni=1)),
    (Decision(release=(("nic-0", ("10.0.0.1/32",)),)), Decision(release=(("nic-0", ("10.0.0.1/32",)),))),
    (Decision(), Decision()),
])
def test_single_step_cuts_growth_to_one_address(decision, expected):
    assert single_step(decision) == expected
