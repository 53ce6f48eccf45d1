"""The target rules: how far a pool is below or above what WARM_*/MINIMUM_* ask for.

Three modes, as in aws-node (``isDatastorePoolTooLow`` / ``datastoreTargetState`` /
``isDatastorePoolTooHigh``), chosen by :class:`~ipamd.pool.model.PoolTargets`:

* IP targets (WARM_IP_TARGET or MINIMUM_IP_TARGET set; they override the two below):
  short = max(WIT - available, MIT - total); over = min(available - WIT, total - MIT). In prefix mode
  ``over`` counts free prefixes beyond what ceil((in use + WIT)/16) and ceil(MIT/16) need, so
  "MINIMUM_IP_TARGET > N*16 behaves like (N+1)*16".
* WARM_PREFIX_TARGET (prefix mode): low while available < 16*WPT; over = free prefixes - WPT.
* WARM_ENI_TARGET (secondary-IP mode): low while available < WET * maxIPsPerENI; single addresses are
  never given back, whole ENIs are freed once a spare one is beyond the target (``eni_surplus``, with
  a margin of half an ENI by default where aws has none).

Target 0 in the last two modes still means "never zero available" (aws: ``target == 0 and
available == 0``), and WARM_PREFIX_TARGET=0 keeps the prefix that rule grew (aws would give it back on
the next decrease and grow it again; its entrypoint refuses that setting, ours may not).
MINIMUM_IP_TARGET without WARM_IP_TARGET caps the pool at MIT, as in aws (its maintainers keep that on
purpose, aws #2659).

Hysteresis comes from the shapes above, and the tests prove it: whatever ``short`` adds leaves
``over`` at 0, and whatever ``over`` releases leaves ``short`` at 0, so grow and shrink never chase
each other at a fixed pod count. In-use addresses = assigned + cooling throughout, because a cooling
address can serve no pod.
"""

from __future__ import annotations

import math

from ipamd.pool.model import NodeCapacity, PoolTargets
from ipamd.pool.stats import ADDRESSES_PER_PREFIX, PoolStats, addresses_per_eni


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def mode_name(targets: PoolTargets) -> str:
    """Which rule set is in force (for notes and logs)."""
    if targets.ip_targets_defined:
        return "ip_targets"
    return "warm_prefix" if targets.prefix_delegation else "warm_eni"


def shortfall(stats: PoolStats, targets: PoolTargets, capacity: NodeCapacity) -> int:
    """Addresses missing to meet the targets (0 = the pool is not low). Ignores max pods and ENI room."""
    if targets.ip_targets_defined:
        return max(targets.warm_ip_target - stats.available, targets.minimum_ip_target - stats.total, 0)
    if targets.prefix_delegation:
        warm, per = targets.warm_prefix_target, ADDRESSES_PER_PREFIX
    else:
        warm, per = targets.warm_eni_target, addresses_per_eni(capacity, targets)
    if warm <= 0:
        return 1 if stats.available == 0 else 0
    return max(warm * per - stats.available, 0)


def cidrs_wanted(stats: PoolStats, targets: PoolTargets, short: int) -> int:
    """CIDRs to add for a shortfall of ``short`` addresses (before ENI room and max pods).

    WARM_ENI_TARGET mode asks for exactly ``short`` here; the grow planner then fills whole ENIs.
    """
    if short <= 0:
        return 0
    if not targets.prefix_delegation:
        return short
    if targets.ip_targets_defined:
        return _ceil_div(short, ADDRESSES_PER_PREFIX)
    return max(1, targets.warm_prefix_target - stats.free_prefixes)


def excess(stats: PoolStats, targets: PoolTargets) -> int:
    """Free CIDRs that may go back to EC2 without making the pool low (0 in WARM_ENI_TARGET mode)."""
    if targets.ip_targets_defined:
        wit, mit = targets.warm_ip_target, targets.minimum_ip_target
        if targets.prefix_delegation:
            in_use = stats.assigned + stats.cooling
            need_warm = _ceil_div(in_use + wit, ADDRESSES_PER_PREFIX)
            need_min = _ceil_div(mit, ADDRESSES_PER_PREFIX)
            over = min(stats.free_cidrs, stats.cidrs - need_warm, stats.cidrs - need_min)
        else:
            over = min(stats.free_cidrs, stats.available - wit, stats.total - mit)
    elif targets.prefix_delegation:
        # WARM_PREFIX_TARGET=0 still keeps one address available (the grow rule's "never zero"), else
        # the prefix it grows would be released on the next tick.
        keep = max(targets.warm_prefix_target * ADDRESSES_PER_PREFIX, 1)
        over = min(stats.free_prefixes - targets.warm_prefix_target,
                   (stats.available - keep) // ADDRESSES_PER_PREFIX)
    else:
        over = 0
    return max(over, 0)


def surplus_addresses(stats: PoolStats, targets: PoolTargets, capacity: NodeCapacity) -> int:
    """Addresses above the targets, for /v1/pool and logs (the releasable part in prefix mode)."""
    if targets.ip_targets_defined or targets.prefix_delegation:
        return excess(stats, targets) * (ADDRESSES_PER_PREFIX if targets.prefix_delegation else 1)
    return max(stats.available - targets.warm_eni_target * addresses_per_eni(capacity, targets), 0)


def eni_surplus(stats: PoolStats, targets: PoolTargets, capacity: NodeCapacity) -> bool:
    """WARM_ENI_TARGET mode's gate for freeing an ENI: a whole spare ENI beyond the target.

    aws's ``shouldRemoveExtraENIs`` is available >= (WET + 1) * maxIPsPerENI. Freeing a full ENI there
    leaves available = WET * maxIPsPerENI, the grow trigger's very edge: the band is zero pods wide and
    a pod count hovering there costs Create + Attach + Modify + Detach + Delete per swing. We ask for
    ``eni_free_margin`` of an ENI more (rounded up), so only a swing of that many pods re-creates it.
    """
    per = addresses_per_eni(capacity, targets)
    margin = math.ceil(max(targets.eni_free_margin, 0.0) * per)
    return per > 0 and stats.available >= (targets.warm_eni_target + 1) * per + margin
