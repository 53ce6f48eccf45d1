"""ipamd's datastore: ENIs -> CIDRs (/32 secondary addresses or /28 prefixes) -> addresses.

Only the reconciler adds ENIs and CIDRs, and only from what EC2 answered, so the datastore never holds an
address EC2 has not assigned to this node (aws #3887). Pods get addresses keyed by the CNI key
``(network, container_id, ifname)``: assigning the same key twice returns the same address, and releasing
an unknown key is a no-op that returns None.

A released address cools down for ``cooldown_s`` before it is handed out again (a pod's conntrack entries
may still point at it, aws #3634); cooling addresses are not free in :meth:`Datastore.pool_state`, so the
pool grows instead of waiting (aws #2896, #1700). Addresses are handed out never-used first, then the one
released longest ago, which spreads reuse as thin as the pool allows.

Only CIDRs of the current mode (prefixes when ``prefix_delegation`` else /32s) serve new pods; a CIDR of
the other mode keeps its existing pods and is offered for release once empty (:meth:`stale_mode_cidrs`).

The hot path (assign/release) is O(log n): a deque of never-used addresses and a heap of released ones,
both lazily cleaned (an entry is checked against the authoritative dicts when popped). Time comes from
the injected wall clock (cooldown must survive a restart, so it is wall-clock time, as in the checkpoint).
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from ipamd.pool import CidrState, EniState, PoolState
from vpccni.errors import PermanentError
from vpccni.net.names import route_table_for_device
from vpccni.wire.protocol import PodRef


class AllocationKey(NamedTuple):
    """The CNI attachment key; equal to :attr:`vpccni.wire.protocol.Request.key`."""

    network: str
    container_id: str
    ifname: str


@dataclass(frozen=True, slots=True)
class Allocation:
    """One address held by one attachment."""

    key: AllocationKey
    address: str
    eni_id: str
    pod: PodRef = field(default_factory=PodRef)
    netns: str = ""
    assigned_at: float = 0.0  # wall-clock seconds


@dataclass(frozen=True, slots=True)
class EniInfo:
    eni_id: str
    device_number: int
    is_primary: bool
    subnet_cidr: str
    seen_at: float  # wall-clock seconds when ipamd first saw it attached
    excluded: bool = False  # serves no pods (custom-networking primary, excluded subnet)

    @property
    def route_table(self) -> int:
        """Pods on the primary ENI (device 0) route through main; the others through device_number + 1."""
        return route_table_for_device(self.device_number)


@dataclass(frozen=True, slots=True)
class CidrStats:
    cidr: str
    eni_id: str
    is_prefix: bool
    size: int
    assigned: int
    cooling: int


@dataclass(frozen=True, slots=True)
class EniStats:
    eni_id: str
    device_number: int
    is_primary: bool
    total: int  # addresses in CIDRs that serve pods
    assigned: int
    cooling: int
    cidrs: tuple[CidrStats, ...]


@dataclass(frozen=True, slots=True)
class DatastoreStats:
    """Counts over CIDRs that serve pods (current mode, ENI not excluded), for metrics and introspection."""

    total: int
    assigned: int
    cooling: int
    free: int
    prefixes: int
    enis: tuple[EniStats, ...]


class DatastoreError(PermanentError):
    """A datastore change the caller must not make (names the ENI, CIDR or address)."""


class UnknownEni(DatastoreError):
    pass


class DuplicateEni(DatastoreError):
    pass


class InvalidCidr(DatastoreError):
    pass


class InUse(DatastoreError):
    """Removing would drop addresses held by pods or still cooling; ``force`` overrides."""


class AddressUnavailable(DatastoreError):
    """A restored allocation names an address this node does not hold, or one already taken."""


class _Eni:
    __slots__ = ("cidrs", "info")

    def __init__(self, info: EniInfo) -> None:
        self.info = info
        self.cidrs: dict[str, _Cidr] = {}


class _Cidr:
    __slots__ = ("addresses", "assigned", "cidr", "eni", "is_prefix", "serves_pods")

    def __init__(self, cidr: str, eni: _Eni, addresses: tuple[str, ...], serves_pods: bool) -> None:
        self.cidr = cidr
        self.eni = eni
        self.is_prefix = not cidr.endswith("/32")
        self.addresses = addresses
        self.serves_pods = serves_pods
        self.assigned = 0


def _expand(cidr: str) -> tuple[str, tuple[str, ...], bool]:
    """Normalise a /32 or /28 and list its addresses; raises InvalidCidr for anything else."""
    try:
        net = ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise InvalidCidr(f"invalid CIDR {cidr!r}: {exc}") from None
    if net.prefixlen not in (32, 28):
        raise InvalidCidr(f"CIDR {cidr!r} is neither a /32 secondary address nor a /28 prefix")
    return str(net), tuple(str(a) for a in net), net.prefixlen == 28


class Datastore:
    """ENIs, CIDRs and allocations of one node. Not thread-safe: one asyncio loop owns it."""

    def __init__(
        self,
        *,
        prefix_delegation: bool = False,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``cooldown_s`` is IP_COOLDOWN_PERIOD (seconds); ``clock`` returns wall-clock seconds."""
        self.prefix_delegation = prefix_delegation
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._enis: dict[str, _Eni] = {}
        self._cidrs: dict[str, _Cidr] = {}
        self._addr_cidr: dict[str, _Cidr] = {}
        self._by_key: dict[AllocationKey, Allocation] = {}
        self._by_address: dict[str, Allocation] = {}
        self._released_at: dict[str, float] = {}  # free addresses that served a pod before
        self._never_used: deque[str] = deque()
        self._released: list[tuple[float, int, str]] = []  # heap; stale entries skipped on pop
        self._seq = itertools.count()
        self._serving = 0  # addresses in CIDRs that serve pods, kept as CIDRs come and go
        # Told of every ADD that got an address ("A") or found none ("N") and every release ("D"), with
        # the key and the pool's held and assigned counts then (the churn journal; cheap, no I/O).
        self.on_event: Callable[[str, AllocationKey, int, int], None] | None = None

    # --- ENIs and CIDRs (the reconciler, from EC2 answers) ---------------------------------------

    def add_eni(
        self,
        eni_id: str,
        device_number: int,
        is_primary: bool,
        subnet_cidr: str = "",
        *,
        excluded: bool = False,
        seen_at: float | None = None,
    ) -> EniInfo:
        if eni_id in self._enis:
            raise DuplicateEni(f"ENI {eni_id} is already in the datastore")
        info = EniInfo(eni_id, device_number, is_primary, subnet_cidr,
                       self._clock() if seen_at is None else seen_at, excluded)
        self._enis[eni_id] = _Eni(info)
        return info

    def remove_eni(self, eni_id: str, *, force: bool = False) -> list[Allocation]:
        """Forget an ENI and its CIDRs. Refuses while an address is assigned or cooling unless ``force``;
        returns the allocations dropped by force."""
        dropped = self.remove_cidrs(eni_id, list(self._eni(eni_id).cidrs), force=force)
        del self._enis[eni_id]  # remove_cidrs refused (raised) unless every CIDR could go
        return dropped

    def add_cidrs(self, eni_id: str, cidrs: Iterable[str]) -> list[str]:
        """Add CIDRs EC2 shows on ``eni_id``; returns those that were new (re-adding is a no-op)."""
        eni = self._eni(eni_id)
        expanded = [_expand(c) for c in cidrs]
        added: list[str] = []
        for cidr, addresses, is_prefix in expanded:
            if cidr in eni.cidrs:
                continue
            if cidr in self._cidrs:
                raise InvalidCidr(f"CIDR {cidr} is already on ENI {self._cidrs[cidr].eni.info.eni_id}")
            clash = next((a for a in addresses if a in self._addr_cidr), None)
            if clash is not None:
                raise InvalidCidr(f"CIDR {cidr} overlaps {self._addr_cidr[clash].cidr} (address {clash})")
            serves = is_prefix == self.prefix_delegation and not eni.info.excluded
            entry = _Cidr(cidr, eni, addresses, serves)
            eni.cidrs[cidr] = entry
            self._cidrs[cidr] = entry
            for address in addresses:
                self._addr_cidr[address] = entry
            if serves:
                self._never_used.extend(addresses)
                self._serving += len(addresses)
            added.append(cidr)
        return added

    def remove_cidrs(self, eni_id: str, cidrs: Iterable[str], *, force: bool = False) -> list[Allocation]:
        """Remove CIDRs from ``eni_id`` (all or nothing). Refuses CIDRs with an address assigned or
        cooling unless ``force`` (EC2 no longer shows them); returns the allocations dropped by force."""
        eni = self._eni(eni_id)
        now = self._clock()
        targets: dict[str, _Cidr] = {}
        for raw in cidrs:
            cidr = _expand(raw)[0]
            if cidr not in eni.cidrs:
                raise InvalidCidr(f"CIDR {cidr} is not on ENI {eni_id}")
            targets[cidr] = eni.cidrs[cidr]
        busy = [c.cidr for c in targets.values() if c.assigned or self._cooling_in(c, now)]
        if busy and not force:
            raise InUse(f"ENI {eni_id}: CIDRs with addresses assigned or cooling: {', '.join(busy)}")
        dropped: list[Allocation] = []
        for entry in targets.values():
            for address in entry.addresses:
                held = self._by_address.pop(address, None)
                if held is not None:
                    del self._by_key[held.key]
                    dropped.append(held)
                self._released_at.pop(address, None)
                del self._addr_cidr[address]
            del eni.cidrs[entry.cidr]
            del self._cidrs[entry.cidr]
            if entry.serves_pods:
                self._serving -= len(entry.addresses)
        return dropped

    # --- pods ------------------------------------------------------------------------------------

    def assign(self, key: AllocationKey, *, pod: PodRef | None = None, netns: str = "") -> Allocation | None:
        """The address of ``key``, assigning a free one if it has none; None when nothing is free."""
        held = self._by_key.get(key)
        if held is not None:
            return held
        now = self._clock()
        address = self._take_free(now)
        if address is None:
            if self.on_event is not None:
                self.on_event("N", key, self._serving, len(self._by_key))
            return None
        held = self._hold(Allocation(key, address, self._addr_cidr[address].eni.info.eni_id,
                                     pod or PodRef(), netns, now))
        if self.on_event is not None:
            self.on_event("A", key, self._serving, len(self._by_key))
        return held

    def release(self, key: AllocationKey, *, cooldown: bool = True) -> Allocation | None:
        """Free the address of ``key`` (into cooldown unless ``cooldown`` is False, e.g. an ADD rolled
        back before the pod could use it). Unknown key: None."""
        held = self._by_key.pop(key, None)
        if held is None:
            return None
        del self._by_address[held.address]
        entry = self._addr_cidr[held.address]
        entry.assigned -= 1
        # Without cooldown the address still goes to the released heap, dated far enough back to be
        # usable now, so "prefer never-used" still holds.
        released_at = self._clock() if cooldown else self._clock() - self.cooldown_s
        self._released_at[held.address] = released_at
        if entry.serves_pods:
            heapq.heappush(self._released, (released_at, next(self._seq), held.address))
        if self.on_event is not None and cooldown:  # a rolled-back ADD is no churn
            self.on_event("D", key, self._serving, len(self._by_key))
        return held

    def restore(self, allocation: Allocation) -> Allocation:
        """Re-hold an allocation from the checkpoint. The address must be on an ENI of this node and
        free; its ENI is taken from the datastore, not from the record."""
        entry = self._addr_cidr.get(allocation.address)
        if entry is None:
            raise AddressUnavailable(f"address {allocation.address} is on no ENI of this node")
        other = self._by_address.get(allocation.address)
        if other is not None:
            raise AddressUnavailable(f"address {allocation.address} is already held by {tuple(other.key)}")
        if allocation.key in self._by_key:
            raise AddressUnavailable(f"key {tuple(allocation.key)} already holds "
                                     f"{self._by_key[allocation.key].address}")
        self._released_at.pop(allocation.address, None)
        return self._hold(replace(allocation, eni_id=entry.eni.info.eni_id))

    def restore_cooldown(self, address: str, released_at: float) -> bool:
        """Record a release time from the checkpoint for a free address; True if it is still cooling.
        Unknown or assigned addresses are ignored. A release time in the future (the clock stepped
        back) is clamped to now."""
        entry = self._addr_cidr.get(address)
        if entry is None or address in self._by_address:
            return False
        now = self._clock()
        released_at = min(released_at, now)
        self._released_at[address] = released_at
        if entry.serves_pods:
            heapq.heappush(self._released, (released_at, next(self._seq), address))
        return now - released_at < self.cooldown_s

    # --- lookups ---------------------------------------------------------------------------------

    def get(self, key: AllocationKey) -> Allocation | None:
        return self._by_key.get(key)

    def by_address(self, address: str) -> Allocation | None:
        return self._by_address.get(address)

    def allocations(self) -> list[Allocation]:
        return list(self._by_key.values())

    def eni_of(self, address: str) -> str | None:
        """The ENI holding ``address`` (assigned or not), or None if no CIDR of this node contains it."""
        entry = self._addr_cidr.get(address)
        return None if entry is None else entry.eni.info.eni_id

    def eni(self, eni_id: str) -> EniInfo | None:
        eni = self._enis.get(eni_id)
        return None if eni is None else eni.info

    def enis(self) -> list[EniInfo]:
        return [e.info for e in self._enis.values()]

    def cidrs_of(self, eni_id: str) -> list[str]:
        return list(self._eni(eni_id).cidrs)

    def cooling(self, now: float | None = None) -> list[tuple[str, float]]:
        """(address, released_at) of every free address still in cooldown."""
        now = self._clock() if now is None else now
        return [(a, t) for a, t in self._released_at.items() if now - t < self.cooldown_s]

    def first_back(self, now: float | None = None) -> float | None:
        """Wall-clock time the first cooling address that can serve a pod leaves cooldown (None: none
        cools)."""
        now = self._clock() if now is None else now
        times = [t for a, t in self._released_at.items() if now - t < self.cooldown_s and self._servable(a)]
        return min(times) + self.cooldown_s if times else None

    def free_count(self, now: float | None = None) -> int:
        """Addresses an ADD could get right now (the readiness probe asks: no per-ENI stats are built)."""
        now = self._clock() if now is None else now
        cooling = self._cooling_per_cidr(now)
        return sum(len(c.addresses) - c.assigned - cooling.get(c.cidr, 0)
                   for c in self._cidrs.values() if c.serves_pods)

    def stale_mode_cidrs(self) -> list[tuple[str, str]]:
        """(eni_id, cidr) of empty, non-cooling CIDRs of the other mode: the reconciler hands them back."""
        now = self._clock()
        return [(c.eni.info.eni_id, c.cidr) for c in self._cidrs.values()
                if c.is_prefix != self.prefix_delegation and not c.assigned and not self._cooling_in(c, now)]

    # --- views for pool math and metrics ---------------------------------------------------------

    def pool_state(self, now: float | None = None,
                   seconds_since_last_decrease: float = float("inf")) -> PoolState:
        """The input of :func:`ipamd.pool.decision.decide`: per ENI its CIDRs of the current mode."""
        now = self._clock() if now is None else now
        cooling = self._cooling_per_cidr(now)
        enis = tuple(
            EniState(
                eni_id=e.info.eni_id,
                device_number=e.info.device_number,
                is_primary=e.info.is_primary,
                age_s=max(0.0, now - e.info.seen_at),
                cidrs=tuple(CidrState(c.cidr, c.assigned, cooling.get(c.cidr, 0))
                            for c in e.cidrs.values() if c.is_prefix == self.prefix_delegation),
                excluded=e.info.excluded,
            )
            for e in sorted(self._enis.values(), key=lambda e: e.info.device_number)
        )
        return PoolState(enis, seconds_since_last_decrease)

    def stats(self, now: float | None = None) -> DatastoreStats:
        now = self._clock() if now is None else now
        cooling = self._cooling_per_cidr(now)
        enis = []
        for e in sorted(self._enis.values(), key=lambda e: e.info.device_number):
            cidrs = tuple(CidrStats(c.cidr, e.info.eni_id, c.is_prefix, len(c.addresses), c.assigned,
                                    cooling.get(c.cidr, 0)) for c in e.cidrs.values())
            serving = [s for s, c in zip(cidrs, e.cidrs.values(), strict=True) if c.serves_pods]
            enis.append(EniStats(e.info.eni_id, e.info.device_number, e.info.is_primary,
                                 sum(s.size for s in serving), sum(s.assigned for s in serving),
                                 sum(s.cooling for s in serving), cidrs))
        total = sum(e.total for e in enis)
        assigned = sum(e.assigned for e in enis)
        cooling_n = sum(e.cooling for e in enis)
        prefixes = sum(1 for c in self._cidrs.values() if c.is_prefix and c.serves_pods)
        return DatastoreStats(total, assigned, cooling_n, total - assigned - cooling_n, prefixes, tuple(enis))

    # --- internals -------------------------------------------------------------------------------

    def _eni(self, eni_id: str) -> _Eni:
        eni = self._enis.get(eni_id)
        if eni is None:
            raise UnknownEni(f"ENI {eni_id} is not in the datastore")
        return eni

    def _hold(self, allocation: Allocation) -> Allocation:
        self._by_key[allocation.key] = allocation
        self._by_address[allocation.address] = allocation
        self._addr_cidr[allocation.address].assigned += 1
        return allocation

    def _servable(self, address: str) -> bool:
        entry = self._addr_cidr.get(address)
        return entry is not None and entry.serves_pods and address not in self._by_address

    def _take_free(self, now: float) -> str | None:
        never_used = self._never_used
        while never_used:
            address = never_used.popleft()
            if self._servable(address) and address not in self._released_at:
                return address
        heap = self._released
        while heap:
            released_at, _, address = heap[0]
            if self._released_at.get(address) != released_at or not self._servable(address):
                heapq.heappop(heap)  # stale: reassigned, re-released or removed since
                continue
            if now - released_at < self.cooldown_s:
                return None  # the longest-released address is still cooling, so all are
            heapq.heappop(heap)
            del self._released_at[address]
            return address
        return None

    def _cooling_per_cidr(self, now: float) -> dict[str, int]:
        counts: dict[str, int] = {}
        for address, released_at in self._released_at.items():
            if now - released_at < self.cooldown_s:
                cidr = self._addr_cidr[address].cidr
                counts[cidr] = counts.get(cidr, 0) + 1
        return counts

    def _cooling_in(self, entry: _Cidr, now: float) -> bool:
        return any(now - self._released_at.get(a, -float("inf")) < self.cooldown_s for a in entry.addresses)
