"""Counting a pool: what the pod-serving ENIs hold, in addresses and in CIDRs.

Every warm-pool rule is a comparison between these counts and a target, so they live apart from the
rules. Only ENIs that serve pods are counted (aws counts "non-excluded ENIs"): an ENI marked
``excluded`` and, under custom networking, the primary ENI contribute nothing.

``available`` is our one deliberate departure from aws's arithmetic: addresses in cooldown are NOT
available (aws counts ``total - assigned``, which calls a pool full while every free address is still
cooling: aws #2896, #1700).

The types come from :mod:`ipamd.pool.model`; these helpers only read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ipamd.pool.model import EniState, NodeCapacity, PoolState, PoolTargets

ADDRESSES_PER_PREFIX = 16


@dataclass(frozen=True)
class PoolStats:
    """Counts over the ENIs that serve pods (only CIDRs of the current mode: /32 or /28)."""

    total: int = 0  # addresses in the pool's CIDRs
    assigned: int = 0  # held by pods
    cooling: int = 0  # released less than IP_COOLDOWN_PERIOD ago
    cidrs: int = 0  # /32 secondary addresses (SIP) or /28 prefixes (PD)
    free_cidrs: int = 0  # CIDRs with nothing assigned and nothing cooling: the only ones EC2 may get back
    enis: int = 0  # ENIs serving pods

    @property
    def available(self) -> int:
        """Addresses a pod could get right now: neither assigned nor cooling."""
        return max(self.total - self.assigned - self.cooling, 0)

    @property
    def free_prefixes(self) -> int:
        """aws's name for free CIDRs in prefix mode (WARM_PREFIX_TARGET counts these)."""
        return self.free_cidrs

    @property
    def in_use(self) -> int:
        """Addresses no new pod can get: assigned or cooling."""
        return self.assigned + self.cooling

    def at_demand(self, peak_in_use: int) -> PoolStats:
        """The pool as if ``peak_in_use`` addresses were in use (shrink decisions use the recent peak)."""
        if peak_in_use <= self.in_use:
            return self
        return replace(self, assigned=peak_in_use - self.cooling)

    def minus(self, other: PoolStats) -> PoolStats:
        """The pool without a part of it (e.g. without one ENI)."""
        return PoolStats(
            total=self.total - other.total,
            assigned=self.assigned - other.assigned,
            cooling=self.cooling - other.cooling,
            cidrs=self.cidrs - other.cidrs,
            free_cidrs=self.free_cidrs - other.free_cidrs,
            enis=self.enis - other.enis,
        )


def serves_pods(eni: EniState, primary_serves_pods: bool = True) -> bool:
    """Whether an ENI's addresses belong to the pod pool."""
    if eni.excluded:
        return False
    return primary_serves_pods or not eni.is_primary


def eni_stats(eni: EniState) -> PoolStats:
    """Counts of one ENI, whether or not it serves pods."""
    total = assigned = cooling = free = 0
    for c in eni.cidrs:
        total += c.size
        assigned += c.assigned
        cooling += c.cooling
        free += c.assigned == 0 and c.cooling == 0
    return PoolStats(total, assigned, cooling, len(eni.cidrs), free, enis=1)


def stats_of(enis: Iterable[EniState], primary_serves_pods: bool = True) -> PoolStats:
    total = assigned = cooling = cidrs = free = count = 0
    for eni in enis:
        if not serves_pods(eni, primary_serves_pods):
            continue
        one = eni_stats(eni)
        total += one.total
        assigned += one.assigned
        cooling += one.cooling
        cidrs += one.cidrs
        free += one.free_cidrs
        count += 1
    return PoolStats(total, assigned, cooling, cidrs, free, count)


def pool_stats(state: PoolState, primary_serves_pods: bool = True) -> PoolStats:
    """Counts over the pod-serving ENIs of ``state`` (pass ``capacity.primary_serves_pods``)."""
    return stats_of(state.enis, primary_serves_pods)


def unit_size(targets: PoolTargets) -> int:
    """Addresses one CIDR of the current mode holds: 1 (/32) or 16 (/28)."""
    return ADDRESSES_PER_PREFIX if targets.prefix_delegation else 1


def cidrs_per_eni(capacity: NodeCapacity, targets: PoolTargets) -> int:
    """How many CIDRs of the current mode one ENI can hold (never negative)."""
    per = capacity.prefixes_per_eni if targets.prefix_delegation else capacity.ips_per_eni
    return max(per, 0)


def addresses_per_eni(capacity: NodeCapacity, targets: PoolTargets) -> int:
    """aws's ``maxIPsPerENI``: pod addresses one full ENI holds in the current mode."""
    return cidrs_per_eni(capacity, targets) * unit_size(targets)
