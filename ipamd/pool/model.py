"""The pool math's inputs and output as plain frozen data: targets, capacity, the pool's state, timers,
and the :class:`Decision`.

The contract with ``ipamd.state.datastore`` (which builds a :class:`PoolState` from its records) and with
``ipamd.reconcile.reconciler`` (which applies a :class:`Decision` through the cloud and, after applying a
release, resets ``PoolState.seconds_since_last_decrease``). Every other pool module imports these, and
nothing else of the package imports the modules that import them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PoolTargets:
    """The warm-pool knobs, as aws-node users know them (0 = unset for the IP/prefix targets)."""

    warm_eni_target: int = 1
    warm_ip_target: int = 0
    minimum_ip_target: int = 0
    warm_prefix_target: int = 0
    prefix_delegation: bool = False
    # Ours, not aws's: extra free addresses, as a fraction of one ENI, that WARM_ENI_TARGET mode wants
    # beyond aws's gate before it frees an ENI. aws frees at available >= (WET + 1) x per-ENI, which
    # leaves the pool exactly at its grow trigger: one arrival re-creates the ENI (5 calls per flap).
    # 0 = aws's exact rule.
    eni_free_margin: float = 0.5
    # VPCCNI_IP_BATCH: with IP targets in secondary-IP mode, grow and give back whole batches of this many
    # addresses (ipamd.pool.batch); 0 = no batches, aws's rules.
    ip_batch: int = 0

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
    # The node's interfaces can be neither added nor removed (Azure: a running VM's NICs are fixed): the
    # pool grows only by addresses on them and never plans a new or a freed interface.
    interfaces_fixed: bool = False

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
    # EC2 refused more addresses in this ENI's subnet moments ago (subnet full, no free /28): plan no
    # growth on it for now, so the pool grows through a new ENI in a subnet that has room.
    subnet_full: bool = False


@dataclass(frozen=True)
class PoolState:
    enis: tuple[EniState, ...]
    seconds_since_last_decrease: float = float("inf")
    # The most addresses in use (assigned + cooling) at any tick of a recent window (the caller keeps the
    # window, e.g. a few minutes); 0 = no memory. Shrinking acts as if this many were in use, the
    # scale-down stabilization window of Kubernetes' HPA: a dip between two peaks frees nothing.
    peak_in_use: int = 0


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
    # addresses short of the targets; addresses above them (releasable part in prefix mode, judged at
    # the recent peak): information for logs, metrics and /v1/pool
    short: int = 0
    over: int = 0
    # when short but unable to grow: why (a protocol.NoIpReason value: "eni_limit", "max_pods")
    blocked: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def changes_pool(self) -> bool:
        """Whether the reconciler has any call to make (``short``/``over``/``notes`` are information)."""
        return bool(self.assign or self.new_eni or self.release or self.free_eni)

    @property
    def mutating_calls(self) -> int:
        """EC2 calls that change state to apply this decision: one per assign entry and per release
        entry, Create + Attach + ModifyNetworkInterfaceAttribute for a new ENI, Detach + Delete for a
        freed one."""
        return len(self.assign) + len(self.release) + (3 if self.new_eni else 0) + (2 if self.free_eni else 0)
