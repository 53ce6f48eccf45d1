"""The simulator refuses what EC2 or the datastore would: otherwise the pool tests could pass on a decision
that ipamd could never apply, or that would hurt a pod."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ipamd.pool import Decision, NodeCapacity, PoolTargets, PoolTimers
from tests.unit.pool.poolsim import SimNode, SimRefused

SMALL = NodeCapacity(max_enis=2, slots_per_eni=4, max_pods=20)  # 3 pod addresses per ENI


def node(min_eni_age_s: float = 0.0) -> SimNode:
    return SimNode(SMALL, PoolTargets(), PoolTimers(min_eni_age_s=min_eni_age_s))


def full_primary_and_second_eni(n: SimNode) -> SimNode:
    n.apply(Decision(assign=((n.node.primary_eni_id, 3),)))
    n.apply(Decision(new_eni=3))
    return n


def held_cidr(n: SimNode, pod: str) -> tuple[str, tuple[str, ...]]:
    assert n.add_pod(pod)
    address = n.pods[pod]
    held = n.datastore.by_address(address)
    assert held is not None
    return held.eni_id, (f"{address}/32",)


def release_cooling(n: SimNode) -> Decision:
    eni_id, cidrs = held_cidr(n, "a")
    n.del_pod("a")
    return Decision(release=((eni_id, cidrs),))


def free_busy_second_eni(n: SimNode) -> Decision:
    n.place_pods(4)  # the primary's 3, then one on the second ENI
    return Decision(free_eni=n.eni_at(1))


CASES: dict[str, tuple[Callable[[], SimNode], Callable[[SimNode], Decision], str]] = {
    "over the ENI's slots": (node, lambda n: Decision(assign=((n.node.primary_eni_id, 4),)),
                             "PrivateIpAddressLimitExceeded"),
    "a new ENI over its slots": (node, lambda n: Decision(new_eni=4), "PrivateIpAddressLimitExceeded"),
    "past the ENI limit": (lambda: full_primary_and_second_eni(node()), lambda n: Decision(new_eni=1),
                           "AttachmentLimitExceeded"),
    "releasing an assigned CIDR": (node, lambda n: Decision(release=(held_cidr(full_primary_and_second_eni(n),
                                                                               "a"),)), "InUse"),
    "releasing a cooling CIDR": (lambda: full_primary_and_second_eni(node()), release_cooling, "InUse"),
    "freeing the primary ENI": (node, lambda n: Decision(free_eni=n.node.primary_eni_id),
                                "OperationNotPermitted"),
    "freeing a young ENI": (lambda: full_primary_and_second_eni(node(min_eni_age_s=60)),
                            lambda n: Decision(free_eni=n.eni_at(1)), "younger than 60"),
    "freeing a busy ENI": (lambda: full_primary_and_second_eni(node()), free_busy_second_eni, "InUse"),
    "assigning on an unknown ENI": (node, lambda n: Decision(assign=(("eni-nope", 1),)), "no such pod ENI"),
}


@pytest.mark.parametrize("case", CASES)
def test_the_simulator_refuses(case: str) -> None:
    build, decision, why = CASES[case]
    n = build()
    with pytest.raises(SimRefused, match=why):
        n.apply(decision(n))
