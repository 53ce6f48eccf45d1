"""Batches: grow and give back addresses in whole batches, so that a burst of pods costs few cloud writes.

On Azure any change to a NIC's addresses is one rewrite of the whole NIC (a PUT that runs as a
long-running operation and keeps the NIC busy meanwhile), so adding sixteen addresses costs what adding
one does. Azure CNS keeps its pool in batches for that reason (Azure/azure-container-networking,
``docs/feature/subnet-scarcity``: it asks for one more batch B when fewer than mf x B addresses are free,
gives one back when more than Mf x B are free, requires Mf > 1 + mf for the two rules to converge, and
computes its target as B x ceil(mf + used / B)). The same shape, over our targets (secondary IPs with
WARM_IP_TARGET or MINIMUM_IP_TARGET, and ``PoolTargets.ip_batch`` = VPCCNI_IP_BATCH = B > 0):

* **grow**: the shortfall of :mod:`ipamd.pool.targets` (unchanged), rounded up to whole batches. With
  WARM_IP_TARGET = mf x B and a pool of whole batches this is CNS's target exactly (B=16, WARM_IP_TARGET=8:
  25 pods in use give a pool of 48).
* **give back**: whole batches only, and only while more than WARM_IP_TARGET + B addresses are free, i.e.
  Mf = mf + 1 with one address of margin: after a release at least WARM_IP_TARGET + 1 stay free, so no
  fixed pod count makes the pool grow and shrink in turn (tested over tables of cases). Never below
  MINIMUM_IP_TARGET, never an address in use or cooling.
* **single steps**: once the subnet has answered "full", CNS drops its batch to 1 so that the subnet's last
  addresses still reach pods; :func:`single_step` trims a growth decision to one address (a write of B
  would fail where a write of 1 still fits).

Pure functions, no I/O; :func:`ipamd.pool.decision.decide` applies the first two.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ipamd.pool.model import Decision, PoolTargets

if TYPE_CHECKING:
    from ipamd.pool.stats import PoolStats


def batching(targets: PoolTargets) -> int:
    """The batch in force: VPCCNI_IP_BATCH in secondary-IP mode with IP targets, else 0 (no batches)."""
    if targets.ip_batch > 0 and targets.ip_targets_defined and not targets.prefix_delegation:
        return targets.ip_batch
    return 0


def batched_goal(goal: int, targets: PoolTargets) -> int:
    """Addresses to add for ``goal`` wanted: whole batches (``goal`` itself when no batch applies)."""
    batch = batching(targets)
    if batch == 0 or goal <= 0:
        return goal
    return -(-goal // batch) * batch


def batched_release(over: int, stats: PoolStats, targets: PoolTargets) -> int:
    """Of ``over`` addresses above the targets, how many to give back now: whole batches that leave more
    than WARM_IP_TARGET free and at least MINIMUM_IP_TARGET held (``over`` when no batch applies)."""
    batch = batching(targets)
    if batch == 0:
        return over
    warm, minimum = targets.warm_ip_target, targets.minimum_ip_target
    # WARM_IP_TARGET = 0 has no grow threshold on the free side to keep away from (MINIMUM_IP_TARGET only).
    free_side = (stats.available - warm - 1) // batch if warm > 0 else stats.available // batch
    batches = min(free_side, (stats.total - minimum) // batch, stats.free_cidrs // batch, over // batch)
    return max(batches, 0) * batch


def single_step(decision: Decision) -> Decision:
    """``decision`` with its growth cut to one address on the first interface (shrinking untouched)."""
    if not decision.assign and not decision.new_eni:
        return decision
    if decision.assign:
        eni_id, _ = decision.assign[0]
        return replace(decision, assign=((eni_id, 1),), new_eni=0)
    return replace(decision, new_eni=1)
