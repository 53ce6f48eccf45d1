"""Pure warm-pool math: (pool state, targets, capacity, timers) -> one decision. No I/O, no clock reads.

aws-node's WARM_ENI_TARGET / WARM_IP_TARGET / MINIMUM_IP_TARGET / WARM_PREFIX_TARGET rules, growth and
shrink plans, and the sliding peak window. Imports only the standard library and :mod:`vpccni.config`
(limits); tested over tables of cases.

The package's public names are re-exported here (``from ipamd.pool import decide, PoolState``); the
input/output types live in :mod:`.model`, the rules in :mod:`.stats`, :mod:`.targets`, :mod:`.grow`,
:mod:`.shrink`, the recent-peak window in :mod:`.window`, and :func:`decide` in :mod:`.decision`.
"""


from ipamd.pool.batch import batched_goal, batched_release, batching, single_step
from ipamd.pool.decision import decide
from ipamd.pool.grow import BLOCKED_ENI_LIMIT, BLOCKED_MAX_PODS, GrowthPlan, max_pods_headroom, plan_growth
from ipamd.pool.model import CidrState, Decision, EniState, NodeCapacity, PoolState, PoolTargets, PoolTimers
from ipamd.pool.shrink import deletable_eni, eni_is_idle, plan_release
from ipamd.pool.stats import (
    ADDRESSES_PER_PREFIX,
    PoolStats,
    addresses_per_eni,
    cidrs_per_eni,
    eni_stats,
    pool_stats,
    serves_pods,
    unit_size,
)
from ipamd.pool.targets import cidrs_wanted, eni_surplus, excess, mode_name, shortfall, surplus_addresses
from ipamd.pool.window import DEFAULT_PEAK_WINDOW_S, PeakWindow

__all__ = [
    "ADDRESSES_PER_PREFIX",
    "BLOCKED_ENI_LIMIT",
    "BLOCKED_MAX_PODS",
    "DEFAULT_PEAK_WINDOW_S",
    "CidrState",
    "Decision",
    "EniState",
    "GrowthPlan",
    "NodeCapacity",
    "PeakWindow",
    "PoolState",
    "PoolStats",
    "PoolTargets",
    "PoolTimers",
    "addresses_per_eni",
    "batched_goal",
    "batched_release",
    "batching",
    "cidrs_per_eni",
    "cidrs_wanted",
    "decide",
    "deletable_eni",
    "eni_is_idle",
    "eni_stats",
    "eni_surplus",
    "excess",
    "max_pods_headroom",
    "mode_name",
    "plan_growth",
    "plan_release",
    "pool_stats",
    "serves_pods",
    "shortfall",
    "single_step",
    "surplus_addresses",
    "unit_size",
]
