"""Growing a pool that is short: which ENIs get how many CIDRs, and whether a new ENI is needed.

Calls are the scarce resource (EC2 throttles per account), so the plan batches:

* existing ENIs are filled first, in device order, with ONE AssignPrivateIpAddresses per ENI (not an ENI
  whose subnet EC2 just called full: ``EniState.subnet_full``);
* if they cannot cover the shortfall, the same decision also asks for one new ENI, created with its
  CIDRs in the CreateNetworkInterface call (aws does one step per 5 s tick and a separate assign);
* in WARM_ENI_TARGET mode a touched ENI is filled to capacity and a new ENI comes full, as aws does
  (``toAllocate = maxIPsPerENI``): the call costs the same and the next arrivals need none;
* with VPCCNI_IP_BATCH the goal is rounded up to whole batches (:mod:`ipamd.pool.batch`);
* where interfaces are fixed (``NodeCapacity.interfaces_fixed``, Azure) no new ENI is ever planned.

The pool never grows past max pods. In prefix mode the prefix that crosses max pods is still
allowed, otherwise the last few pods could never get an address. When the pool stays short and
nothing more can be done, ``blocked`` names the limit ("max_pods" or "eni_limit", the values of
``vpccni.wire.protocol.NoIpReason``); a shortfall that the next tick's new ENI will cover is not blocked.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipamd.pool.batch import batched_goal
from ipamd.pool.model import NodeCapacity, PoolState, PoolTargets
from ipamd.pool.stats import PoolStats, cidrs_per_eni, serves_pods, unit_size
from ipamd.pool.targets import cidrs_wanted

BLOCKED_ENI_LIMIT = "eni_limit"  # vpccni.wire.protocol.NoIpReason.ENI_LIMIT
BLOCKED_MAX_PODS = "max_pods"  # vpccni.wire.protocol.NoIpReason.MAX_PODS


@dataclass(frozen=True)
class GrowthPlan:
    assign: tuple[tuple[str, int], ...] = ()  # (eni_id, CIDRs to add)
    new_eni: int = 0  # CIDRs to create a new ENI with; 0 = none
    blocked: str = ""  # why the pool stays short after this plan, if nothing more can be done

    @property
    def cidrs_added(self) -> int:
        return sum(n for _, n in self.assign) + self.new_eni


def max_pods_headroom(stats: PoolStats, targets: PoolTargets, capacity: NodeCapacity) -> int:
    """CIDRs the pool may still gain before it holds max pods addresses (the crossing prefix counts)."""
    missing = capacity.max_pods - stats.total
    if missing <= 0:
        return 0
    unit = unit_size(targets)
    return -(-missing // unit)


def plan_growth(
    state: PoolState, stats: PoolStats, short: int, targets: PoolTargets, capacity: NodeCapacity
) -> GrowthPlan:
    """The cheapest set of calls that covers ``short`` addresses, within ENI slots and max pods."""
    per_eni = cidrs_per_eni(capacity, targets)
    whole_enis = not targets.ip_targets_defined and not targets.prefix_delegation
    goal = batched_goal(cidrs_wanted(stats, targets, short), targets)
    headroom = max_pods_headroom(stats, targets, capacity)
    added = 0
    assign: list[tuple[str, int]] = []
    serving = sorted(
        (e for e in state.enis if serves_pods(e, capacity.primary_serves_pods)), key=lambda e: e.device_number
    )
    for eni in serving:
        if added >= goal or headroom <= 0:
            break
        room = 0 if eni.subnet_full else per_eni - len(eni.cidrs)
        if room <= 0:
            continue
        count = min(room if whole_enis else min(room, goal - added), headroom)
        assign.append((eni.eni_id, count))
        added += count
        headroom -= count
    eni_room = len(state.enis) < capacity.max_enis and per_eni > 0 and not capacity.interfaces_fixed
    new_eni = 0
    if added < goal and headroom > 0 and eni_room:
        new_eni = min(per_eni if whole_enis else min(per_eni, goal - added), headroom)
        added += new_eni
        headroom -= new_eni
    blocked = ""
    if added < goal:
        if headroom <= 0:
            blocked = BLOCKED_MAX_PODS
        elif not eni_room or len(state.enis) + (1 if new_eni else 0) >= capacity.max_enis:
            blocked = BLOCKED_ENI_LIMIT
    return GrowthPlan(tuple(assign), new_eni, blocked)
