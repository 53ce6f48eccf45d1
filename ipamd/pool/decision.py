"""Pure warm-pool math: (pool state, targets, capacity, timers) -> one Decision. No I/O, no clock reads.

Semantics follow aws-node's WARM_ENI_TARGET / WARM_IP_TARGET / MINIMUM_IP_TARGET / WARM_PREFIX_TARGET /
MAX_ENI / max-pods rules (aws-node's ``ipamd.go``: ``isDatastorePoolTooLow``/``TooHigh``, its warm-target
helpers and ``decreaseDatastorePool``), with deliberate fixes:

* addresses in cooldown are NOT available (aws #2896, #1700), and never go back to EC2;
* one decision does what aws spreads over several 5 s ticks: fill every existing ENI that has room
  (one call each) AND create a new ENI, with its CIDRs in the create call, when they are not enough;
* the pool never grows past max pods, and a pool that stays short says why (``Decision.blocked``);
* hysteresis against ENI flapping under churn: WARM_ENI_TARGET mode frees an ENI only with half an
  ENI more free than aws asks (``PoolTargets.eni_free_margin``; aws's band is zero pods wide), and
  every shrink looks at the recent peak of addresses in use (``PoolState.peak_in_use``, kept by the
  caller with :class:`PeakWindow`), so a dip between two peaks gives nothing back.

Growth decisions and the converged pool after growth are aws's (the worked examples of aws's docs are
the tests); only shrinking differs, and only by holding more, never less.

The input and output types are in :mod:`ipamd.pool.model`. The rules live in :mod:`.stats` (counting),
:mod:`.targets` (how far from the targets), :mod:`.grow` and :mod:`.shrink` (which calls); :func:`decide`
puts them together: a short pool only grows, a pool at or above its targets only shrinks.
"""

from __future__ import annotations

from ipamd.pool.batch import batched_release
from ipamd.pool.grow import plan_growth
from ipamd.pool.model import Decision, NodeCapacity, PoolState, PoolTargets, PoolTimers
from ipamd.pool.shrink import deletable_eni, excluded_release, idle_excluded_eni, plan_release
from ipamd.pool.stats import pool_stats
from ipamd.pool.targets import excess, mode_name, shortfall, surplus_addresses

DEFAULT_TIMERS = PoolTimers()  # aws-node's spacing


def decide(
    state: PoolState, targets: PoolTargets, capacity: NodeCapacity, timers: PoolTimers = DEFAULT_TIMERS
) -> Decision:
    """What to change now so the pool meets its targets; an empty Decision when nothing should change."""
    stats = pool_stats(state, capacity.primary_serves_pods)
    short = shortfall(stats, targets, capacity)
    mode = mode_name(targets)
    if short > 0:
        plan = plan_growth(state, stats, short, targets, capacity)
        notes = [f"{mode}: short {short} (available {stats.available}, cooling {stats.cooling})"]
        if plan.blocked:
            notes.append(f"cannot grow: {plan.blocked} ({len(state.enis)}/{capacity.max_enis} ENIs, "
                         f"{stats.total}/{capacity.max_pods} max pods)")
        # An ENI serving no pods may hold the very slot growth needs: free it when nothing grows now.
        spare = None if plan.assign or plan.new_eni else idle_excluded_eni(state, timers)
        if spare is not None:
            notes.append(f"{spare.eni_id} serves no pods (excluded) and is idle: freeing it")
        return Decision(
            assign=plan.assign, new_eni=plan.new_eni, short=short, blocked=plan.blocked, notes=tuple(notes),
            free_eni=spare.eni_id if spare is not None else None,
        )

    notes = []
    if state.peak_in_use > stats.in_use:
        notes.append(f"{mode}: shrinking as if {state.peak_in_use} were in use (recent peak, "
                     f"now {stats.in_use})")
        stats = stats.at_demand(state.peak_in_use)
    over = batched_release(excess(stats, targets), stats, targets)
    victim = deletable_eni(state, stats, targets, capacity, timers)
    left = over - (len(victim.cidrs) if victim is not None else 0)
    release: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if left > 0:
        if state.seconds_since_last_decrease >= timers.decrease_interval_s:
            rest = tuple(e for e in state.enis if victim is None or e.eni_id != victim.eni_id)
            release = plan_release(rest, left, capacity.primary_serves_pods)
        else:
            notes.append(
                f"{mode}: {left} CIDRs over target, release waits for the {timers.decrease_interval_s:g} s "
                f"spacing ({state.seconds_since_last_decrease:g} s since the last)"
            )
    if victim is not None:
        notes.append(f"{mode}: {victim.eni_id} is idle and not needed for the targets")
    else:  # ENIs serving no pods (excluded subnet): freed when idle, their free CIDRs given back
        victim = idle_excluded_eni(state, timers)
        if victim is not None:
            notes.append(f"{victim.eni_id} serves no pods (excluded) and is idle: freeing it")
    if state.seconds_since_last_decrease >= timers.decrease_interval_s:
        release += excluded_release(state, keep_out=victim)
    return Decision(
        release=release,
        free_eni=victim.eni_id if victim is not None else None,
        over=surplus_addresses(stats, targets, capacity),
        notes=tuple(notes),
    )
