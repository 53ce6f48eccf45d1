"""Shrinking a pool that is above its targets: one ENI to free, free CIDRs to hand back.

Safety first, then calls:

* Only free CIDRs go back: nothing assigned AND nothing cooling (aws checks "assigned" only, so an
  address a pod released a second ago can return to EC2 and be handed to another node while stale
  conntrack or a slow DEL still refers to it).
* An ENI is freed only if it is not the primary, serves pods, is at least ``min_eni_age_s`` old,
  holds nothing assigned or cooling, and is not needed: its CIDRs fit within what the targets allow
  giving back (aws's ``isRequiredFor{WarmIP,MinimumIP,WarmPrefix}Target``), or, in WARM_ENI_TARGET
  mode, a whole spare ENI is beyond the target (``eni_surplus``). At most one per decision.
* Releases are spread over ENIs so that the fewest calls (one UnassignPrivateIpAddresses per ENI) give
  back the most, preferring secondary ENIs with the least in use: draining them lets them be freed
  whole later, while the primary ENI can never be freed.
* An ENI that serves no pods (``excluded``: its subnet is tagged ``kubernetes.io/role/cni=0``) only
  takes an ENI slot and addresses, as aws-node sees it too: its free CIDRs go back to EC2 and, once it
  holds nothing assigned or cooling and is old enough, it is freed whatever the targets say (it counts
  in none of them, and its slot may be the one the pool needs to grow). aws-node releases such an ENI's
  free addresses (at start and as its pods leave) and deletes it once it has no pods
  (``secondary_eni_exclusion_focused_test.go``); we keep our safety: nothing cooling goes back.
"""

from __future__ import annotations

from ipamd.pool.model import EniState, NodeCapacity, PoolState, PoolTargets, PoolTimers
from ipamd.pool.stats import PoolStats, eni_stats, serves_pods
from ipamd.pool.targets import eni_surplus, excess, shortfall


def eni_is_idle(eni: EniState) -> bool:
    """Nothing assigned and nothing cooling on any of its CIDRs."""
    return all(c.is_free for c in eni.cidrs)


def deletable_eni(
    state: PoolState,
    stats: PoolStats,
    targets: PoolTargets,
    capacity: NodeCapacity,
    timers: PoolTimers,
) -> EniState | None:
    """The one ENI to detach and delete now, or None. ``stats`` = :func:`pool_stats` of ``state``."""
    if capacity.interfaces_fixed:  # Azure: a running VM's NICs cannot be detached
        return None
    over = excess(stats, targets)
    whole_eni_mode = not targets.ip_targets_defined and not targets.prefix_delegation
    if whole_eni_mode and not eni_surplus(stats, targets, capacity):
        return None
    candidates = [
        eni
        for eni in state.enis
        if not eni.is_primary
        and serves_pods(eni, capacity.primary_serves_pods)
        and eni.age_s >= timers.min_eni_age_s
        and eni_is_idle(eni)
    ]
    # Fewest CIDRs first (least to re-create if pods come back), then the newest device: LIFO keeps the
    # low device numbers, and their route tables, stable.
    candidates.sort(key=lambda e: (len(e.cidrs), -e.device_number))
    for eni in candidates:
        if not whole_eni_mode and len(eni.cidrs) > over:
            continue
        if shortfall(stats.minus(eni_stats(eni)), targets, capacity) > 0:
            continue
        return eni
    return None


def plan_release(
    enis: tuple[EniState, ...], count: int, primary_serves_pods: bool = True
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Up to ``count`` free CIDRs to hand back, grouped by ENI (one call per ENI)."""
    if count <= 0:
        return ()
    donors = [e for e in enis if serves_pods(e, primary_serves_pods) and any(c.is_free for c in e.cidrs)]

    def donor_order(eni: EniState) -> tuple[bool, bool, int, int, int]:
        free = sum(1 for c in eni.cidrs if c.is_free)
        in_use = sum(c.assigned + c.cooling for c in eni.cidrs)
        # One ENI that covers everything beats two calls; then secondaries, least in use, most free.
        return (free < count, eni.is_primary, in_use, -free, -eni.device_number)

    donors.sort(key=donor_order)
    plan: list[tuple[str, tuple[str, ...]]] = []
    left = count
    for eni in donors:
        if left <= 0:
            break
        take = tuple(c.cidr for c in eni.cidrs if c.is_free)[:left]
        plan.append((eni.eni_id, take))
        left -= len(take)
    return tuple(plan)


def idle_excluded_eni(state: PoolState, timers: PoolTimers) -> EniState | None:
    """A secondary ENI that serves no pods and holds nothing assigned or cooling, old enough to free."""
    idle = [eni for eni in state.enis
            if eni.excluded and not eni.is_primary and eni.age_s >= timers.min_eni_age_s and eni_is_idle(eni)]
    return max(idle, key=lambda e: e.device_number, default=None)


def excluded_release(
    state: PoolState, keep_out: EniState | None = None
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every free CIDR of the secondary ENIs that serve no pods (but ``keep_out``, freed whole), one call
    per ENI: they can never serve a pod here."""
    plan = []
    for eni in state.enis:
        if not eni.excluded or eni.is_primary or (keep_out is not None and eni.eni_id == keep_out.eni_id):
            continue
        free = tuple(c.cidr for c in eni.cidrs if c.is_free)
        if free:
            plan.append((eni.eni_id, free))
    return tuple(plan)
