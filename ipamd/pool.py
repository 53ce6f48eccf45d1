"""Pure warm-pool math: (pool state, targets, capacity, timers) -> one Decision. No I/O, no clock reads.

Semantics follow aws-node's WARM_ENI_TARGET / WARM_IP_TARGET / MINIMUM_IP_TARGET / WARM_PREFIX_TARGET /
MAX_ENI / max-pods rules (see ../shared/reference/aws-vpc-cni.md §3), with one deliberate fix:
addresses in cooldown are NOT available (aws #2896, #1700).

The input types below are the contract with ``ipamd.datastore`` (which builds a :class:`PoolState`
from its records) and with ``ipamd.reconciler`` (which applies a :class:`Decision` through the cloud).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADDRESSES_PER_PREFIX = 16


@dataclass(frozen=True)
class PoolTargets:
    """The warm-pool knobs, as aws-node users know them (0 = unset for the IP/prefix targets)."""

    warm_eni_target: int = 1
    warm_ip_target: int = 0
    minimum_ip_target: int = 0
    warm_prefix_target: int = 0
    prefix_delegation: bool = False

    @property
    def ip_targets_defined(self) -> bool:
        """WARM_IP_TARGET or MINIMUM_IP_TARGET set: they override WARM_ENI/PREFIX_TARGET."""
        return self.warm_ip_target > 0 or self.minimum_ip_target > 0


@dataclass(frozen=True)
class NodeCapacity:
    """What the node can hold, from the instance type and settings."""

    max_enis: int  # min(MAX_ENI, instance limit) minus ENIs we do not manage
    slots_per_eni: int  # the instance type's IPv4 addresses per ENI, primary address included
    max_pods: int  # the pool stops growing once it holds this many addresses
    primary_serves_pods: bool = True  # False under custom networking

    @property
    def ips_per_eni(self) -> int:
        """Pod addresses one ENI can hold in secondary-IP mode (its primary address is not for pods)."""
        return self.slots_per_eni - 1

    @property
    def prefixes_per_eni(self) -> int:
        return self.slots_per_eni - 1


@dataclass(frozen=True)
class CidrState:
    """One /32 secondary address or one /28 prefix on an ENI."""

    cidr: str  # "10.0.1.23/32" or "10.0.1.16/28"
    assigned: int = 0  # addresses in it held by pods
    cooling: int = 0  # addresses in it released less than IP_COOLDOWN_PERIOD ago

    @property
    def size(self) -> int:
        return 1 << (32 - int(self.cidr.rsplit("/", 1)[1]))

    @property
    def is_free(self) -> bool:
        """Nothing assigned and nothing cooling: safe to hand back to EC2."""
        return self.assigned == 0 and self.cooling == 0


@dataclass(frozen=True)
class EniState:
    eni_id: str
    device_number: int
    is_primary: bool
    age_s: float  # seconds since ipamd first saw it attached (caller computes from its clock)
    cidrs: tuple[CidrState, ...] = ()  # only CIDRs of the current mode (/32 in SIP, /28 in PD)
    excluded: bool = False  # serves no pods (custom-networking primary, excluded subnet)


@dataclass(frozen=True)
class PoolState:
    enis: tuple[EniState, ...]
    seconds_since_last_decrease: float = float("inf")


@dataclass(frozen=True)
class PoolTimers:
    """Spacing rules, seconds (aws: decreaseIPPoolInterval 30 s, minENILifeTime 60 s)."""

    decrease_interval_s: float = 30.0
    min_eni_age_s: float = 60.0


@dataclass(frozen=True)
class Decision:
    """What the reconciler should do this tick. Empty = nothing to do."""

    # (eni_id, count): count addresses (SIP) or prefixes (PD) to add on an existing ENI, one call each
    assign: tuple[tuple[str, int], ...] = ()
    # addresses (SIP) or prefixes (PD) to create a new ENI with; 0 = no new ENI
    new_eni: int = 0
    # (eni_id, cidrs): CIDRs to hand back to EC2
    release: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # one ENI to detach and delete, or None
    free_eni: str | None = None
    # how many addresses short of / over the targets (for logs, metrics and /v1/pool)
    short: int = 0
    over: int = 0
    # when short but unable to grow: why (a protocol.NoIpReason value: "eni_limit", "max_pods")
    blocked: str = ""
    notes: tuple[str, ...] = field(default=())
