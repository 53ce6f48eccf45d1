"""A pure simulator of one node's pool: applies a pool Decision as EC2 would, and runs pods against it.

It plays three parts the pool math never sees: EC2 (add CIDRs to ENIs, create ENIs at the lowest free
device number, release CIDRs, detach + delete ENIs, refusing whatever EC2 would refuse), the
datastore (hand addresses to pods, put released ones into cooldown) and the clock (ENI age, cooldown
expiry, release spacing). It counts the mutating EC2 calls each decision costs.

EC2 refusals and unsafe requests raise :class:`SimRefused`, so a test fails when the pool math asks
for something impossible (over ENI slots, past the ENI limit, releasing an assigned or cooling CIDR,
freeing the primary ENI or a busy one).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from ipamd.pool import (
    CidrState,
    Decision,
    EniState,
    NodeCapacity,
    PoolState,
    PoolTargets,
    PoolTimers,
    decide,
)
from ipamd.pool.window import PeakWindow


class SimRefused(AssertionError):
    """EC2 would refuse this request, or it would hurt a pod."""


@dataclass
class SimCidr:
    cidr: str
    size: int
    seq: int  # creation order: the datastore hands out never-used addresses first, oldest CIDR first
    cooldown_s: float
    assigned: int = 0
    never_used: int = -1
    released_at: list[float] = field(default_factory=list)  # addresses given back by pods, when

    def __post_init__(self) -> None:
        if self.never_used < 0:
            self.never_used = self.size

    def cooling(self, now: float) -> int:
        return sum(1 for t in self.released_at if t + self.cooldown_s > now)

    def free(self, now: float) -> int:
        return self.never_used + sum(1 for t in self.released_at if t + self.cooldown_s <= now)

    def oldest_release(self, now: float) -> float:
        """When its longest-released usable address was released (inf if none)."""
        return min((t for t in self.released_at if t + self.cooldown_s <= now), default=float("inf"))

    def take(self, now: float) -> None:
        if self.never_used:
            self.never_used -= 1
        else:
            self.released_at.remove(self.oldest_release(now))
        self.assigned += 1

    def give_back(self, now: float) -> None:
        self.assigned -= 1
        self.released_at.append(now)


@dataclass
class SimEni:
    eni_id: str
    device_number: int
    is_primary: bool
    created_at: float
    cidrs: dict[str, SimCidr] = field(default_factory=dict)
    excluded: bool = False


# How the datastore picks an address for a pod:
# "lru"    = ipamd.state.datastore's rule: never-used addresses first (oldest CIDR first), then the one
# released
#            longest ago;
# "pack"   = lowest device number first: drains the highest ENIs, the worst case for ENI churn;
# "spread" = the ENI with the most free addresses (like aws's random map order, on average).
PLACEMENTS = ("lru", "pack", "spread")


class SimNode:
    def __init__(
        self,
        capacity: NodeCapacity,
        targets: PoolTargets,
        timers: PoolTimers | None = None,
        *,
        cooldown_s: float = 30.0,
        tick_s: float = 5.0,
        placement: str = "lru",
        peak_window_s: float = 0.0,
    ) -> None:
        assert placement in PLACEMENTS
        self.capacity, self.targets, self.timers = capacity, targets, timers or PoolTimers()
        self.cooldown_s, self.tick_s, self.placement = cooldown_s, tick_s, placement
        self.now = 0.0
        self.peak = PeakWindow(peak_window_s) if peak_window_s > 0 else None
        self.last_decrease = float("-inf")
        self.calls: Counter[str] = Counter()
        self.decisions: list[Decision] = []
        self._ids = itertools.count(1)
        self._blocks = itertools.count(1)
        self._cidr_seq = itertools.count()
        self._pod_ids = itertools.count()
        self.pods: dict[str, tuple[str, str]] = {}  # pod -> (eni_id, cidr)
        primary = SimEni("eni-0", 0, True, 0.0, excluded=not capacity.primary_serves_pods)
        self.enis: dict[str, SimEni] = {primary.eni_id: primary}

    @classmethod
    def from_state(
        cls,
        state: PoolState,
        capacity: NodeCapacity,
        targets: PoolTargets,
        timers: PoolTimers | None = None,
        *,
        placement: str = "lru",
        peak_window_s: float = 0.0,
    ) -> SimNode:
        """A node holding ``state`` now: its pods stay, its cooling addresses cool on from a random-free
        but deterministic point (they were released evenly over the last cooldown period)."""
        node = cls(capacity, targets, timers, placement=placement, peak_window_s=peak_window_s)
        node.enis = {}
        node.last_decrease = -state.seconds_since_last_decrease
        for e in state.enis:
            sim = SimEni(e.eni_id, e.device_number, e.is_primary, -e.age_s, excluded=e.excluded)
            for c in e.cidrs:
                cidr = SimCidr(c.cidr, c.size, next(node._cidr_seq), node.cooldown_s, assigned=c.assigned,
                               never_used=c.size - c.assigned - c.cooling)
                cidr.released_at = [-node.cooldown_s * (k + 1) / (c.cooling + 1) for k in range(c.cooling)]
                sim.cidrs[c.cidr] = cidr
            node.enis[e.eni_id] = sim
        return node

    # --- what the datastore would report ---------------------------------------------------------

    def state(self) -> PoolState:
        enis = tuple(
            EniState(
                eni_id=e.eni_id,
                device_number=e.device_number,
                is_primary=e.is_primary,
                age_s=self.now - e.created_at,
                cidrs=tuple(CidrState(c.cidr, c.assigned, c.cooling(self.now)) for c in e.cidrs.values()),
                excluded=e.excluded,
            )
            for e in sorted(self.enis.values(), key=lambda e: e.device_number)
        )
        in_use = sum(c.assigned + c.cooling for e in enis if not e.excluded for c in e.cidrs)
        peak = self.peak.observe(self.now, in_use) if self.peak is not None else 0
        return PoolState(enis, seconds_since_last_decrease=self.now - self.last_decrease, peak_in_use=peak)

    def cidr_counts(self) -> list[int]:
        """CIDRs per ENI in device order (the shape of aws's "IPs per ENI" column)."""
        return [len(e.cidrs) for e in sorted(self.enis.values(), key=lambda e: e.device_number)]

    def total_addresses(self) -> int:
        return sum(c.size for e in self.enis.values() for c in e.cidrs.values())

    def available(self) -> int:
        return sum(c.free(self.now) for e in self.enis.values() if not e.excluded for c in e.cidrs.values())

    # --- EC2 ----------------------------------------------------------------------------------------

    def _new_cidrs(self, count: int) -> list[SimCidr]:
        size = 16 if self.targets.prefix_delegation else 1
        out = []
        for _ in range(count):
            n = next(self._blocks) * size
            cidr = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{32 if size == 1 else 28}"
            out.append(SimCidr(cidr, size, next(self._cidr_seq), self.cooldown_s))
        return out

    def _per_eni(self) -> int:
        return self.capacity.slots_per_eni - 1

    def apply(self, d: Decision) -> int:
        """Apply a decision as EC2 would; returns the mutating calls it cost."""
        before = sum(self.calls.values())
        for eni_id, count in d.assign:
            eni = self.enis.get(eni_id)
            if eni is None or eni.excluded or count <= 0:
                raise SimRefused(f"assign {count} on {eni_id}: no such pod ENI or empty request")
            if len(eni.cidrs) + count > self._per_eni():
                raise SimRefused(f"PrivateIpAddressLimitExceeded on {eni_id}: {len(eni.cidrs)} + {count}")
            for c in self._new_cidrs(count):
                eni.cidrs[c.cidr] = c
            self.calls["AssignPrivateIpAddresses"] += 1
        if d.new_eni:
            if len(self.enis) >= self.capacity.max_enis:
                raise SimRefused(f"AttachmentLimitExceeded: {len(self.enis)} ENIs attached")
            if d.new_eni > self._per_eni():
                raise SimRefused(f"create with {d.new_eni} CIDRs > {self._per_eni()} per ENI")
            used = {e.device_number for e in self.enis.values()}
            device = next(i for i in itertools.count(1) if i not in used)
            eni = SimEni(f"eni-{next(self._ids)}", device, False, self.now)
            for c in self._new_cidrs(d.new_eni):
                eni.cidrs[c.cidr] = c
            self.enis[eni.eni_id] = eni
            self.calls.update(
                ["CreateNetworkInterface", "AttachNetworkInterface", "ModifyNetworkInterfaceAttribute"]
            )
        for eni_id, cidrs in d.release:
            eni = self.enis.get(eni_id)
            if eni is None or not cidrs:
                raise SimRefused(f"release on unknown ENI {eni_id} or empty list")
            for cidr in cidrs:
                held = eni.cidrs.get(cidr)
                if held is None or held.assigned or held.cooling(self.now):
                    raise SimRefused(f"release of {cidr} on {eni_id}: unknown, assigned or cooling")
                del eni.cidrs[cidr]
            self.calls["UnassignPrivateIpAddresses"] += 1
            self.last_decrease = self.now
        if d.free_eni is not None:
            eni = self.enis.get(d.free_eni)
            if eni is None or eni.is_primary:
                raise SimRefused(f"free of {d.free_eni}: unknown or primary")
            if any(c.assigned or c.cooling(self.now) for c in eni.cidrs.values()):
                raise SimRefused(f"free of {d.free_eni}: addresses assigned or cooling")
            if self.now - eni.created_at < self.timers.min_eni_age_s:
                raise SimRefused(f"free of {d.free_eni}: younger than {self.timers.min_eni_age_s} s")
            del self.enis[d.free_eni]
            self.calls.update(["DetachNetworkInterface", "DeleteNetworkInterface"])
        return sum(self.calls.values()) - before

    @property
    def mutating_calls(self) -> int:
        return sum(self.calls.values())

    # --- the pool loop and the clock --------------------------------------------------------------

    def tick(self) -> Decision:
        """One pool-loop pass at the current time: decide, apply, record."""
        d = decide(self.state(), self.targets, self.capacity, self.timers)
        spent = self.apply(d)
        assert spent == d.mutating_calls, (spent, d)
        self.decisions.append(d)
        return d

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def quiet_window_s(self) -> float:
        """Long enough for every timer the pool math reads to run out."""
        window = self.peak.window_s if self.peak is not None else 0.0
        timers = self.timers
        return self.cooldown_s + timers.min_eni_age_s + timers.decrease_interval_s + window + self.tick_s

    def settle(self, max_ticks: int = 200) -> int:
        """Tick until no decision changes the pool for a whole quiet window; returns ticks that did."""
        busy = 0
        quiet_since = self.now
        for _ in range(max_ticks):
            if self.tick().changes_pool:
                busy += 1
                quiet_since = self.now
            elif self.now - quiet_since >= self.quiet_window_s():
                return busy
            self.advance(self.tick_s)
        raise AssertionError(f"no fixed point after {max_ticks} ticks: {self.decisions[-3:]}")

    # --- pods --------------------------------------------------------------------------------------

    def _pick(self) -> tuple[SimEni, SimCidr] | None:
        options = [
            (e, c)
            for e in sorted(self.enis.values(), key=lambda e: e.device_number)
            if not e.excluded
            for c in e.cidrs.values()
            if c.free(self.now) > 0
        ]
        if not options:
            return None
        if self.placement == "spread":
            def free_on(e: SimEni) -> int:
                return sum(c.free(self.now) for c in e.cidrs.values())

            return max(options, key=lambda ec: (free_on(ec[0]), -ec[0].device_number))
        if self.placement == "lru":
            fresh = [ec for ec in options if ec[1].never_used]
            if fresh:
                return min(fresh, key=lambda ec: ec[1].seq)
            return min(options, key=lambda ec: ec[1].oldest_release(self.now))
        return options[0]

    def add_pod(self, pod: str) -> bool:
        """Give ``pod`` an address; False when the pool has none available."""
        picked = self._pick()
        if picked is None:
            return False
        eni, c = picked
        c.take(self.now)
        self.pods[pod] = (eni.eni_id, c.cidr)
        return True

    def del_pod(self, pod: str) -> None:
        eni_id, cidr = self.pods.pop(pod)
        self.enis[eni_id].cidrs[cidr].give_back(self.now)

    def place_pods(self, count: int, *, tick_every_pod: bool = False, max_ticks: int = 500) -> None:
        """Schedule ``count`` pods, ticking the pool whenever none is available (as kubelet retries)."""
        ticks = 0
        for i in range(count):
            pod = f"pod-{next(self._pod_ids)}"
            while not self.add_pod(pod):
                if ticks > max_ticks:
                    raise AssertionError(f"pod {i} never got an address: {self.decisions[-1]}")
                self.tick()
                self.advance(self.tick_s)
                ticks += 1
            if tick_every_pod:
                self.tick()
                self.advance(self.tick_s)


def fresh_node(
    capacity: NodeCapacity,
    targets: PoolTargets,
    pods: int,
    *,
    tick_every_pod: bool = False,
    placement: str = "lru",
) -> SimNode:
    """A node that starts with a bare primary ENI, settles, takes ``pods`` pods and settles again."""
    node = SimNode(capacity, targets, placement=placement)
    node.settle()
    node.place_pods(pods, tick_every_pod=tick_every_pod)
    node.settle()
    return node


@dataclass(frozen=True)
class ChurnResult:
    pods: int  # arrivals
    mutating_calls: int
    calls: dict[str, int]
    waits: int  # pod-ticks spent waiting for an address
    peak_pods: int
    idle_addresses_avg: float  # available addresses averaged over ticks (the warm pool's cost)

    @property
    def calls_per_1000_pods(self) -> float:
        return self.mutating_calls * 1000 / self.pods


def churn_trace(seed: int, arrivals: int = 1000, mean_pods: float = 20.0, mean_life_s: float = 300.0
                ) -> list[tuple[float, float]]:
    """(arrival time, departure time) per pod: Poisson arrivals, exponential lifetimes, ~mean_pods live."""
    rng = random.Random(seed)
    rate = mean_pods / mean_life_s  # Little's law
    t, out = 0.0, []
    for _ in range(arrivals):
        t += rng.expovariate(rate)
        out.append((t, t + rng.expovariate(1 / mean_life_s)))
    return out


def run_churn(node: SimNode, trace: list[tuple[float, float]]) -> ChurnResult:
    """Play ``trace`` against a settled node, one pool tick per ``tick_s``; pods without an address wait."""
    node.settle()
    start_calls = Counter(node.calls)
    t0 = node.now
    events = sorted([(t0 + a, 1, i) for i, (a, _) in enumerate(trace)] + [(t0 + d, 0, i) for i, (_, d) in
                    enumerate(trace)])
    pending: list[str] = []
    placed: set[str] = set()
    waits = peak = ticks = 0
    idle = 0
    k = 0
    end = events[-1][0] + node.tick_s
    while node.now <= end:
        while k < len(events) and events[k][0] <= node.now:
            _, arriving, i = events[k]
            pod = f"churn-{i}"
            if arriving:
                pending.append(pod)
            elif pod in placed:
                node.del_pod(pod)
                placed.discard(pod)
            elif pod in pending:
                pending.remove(pod)
            k += 1
        still = []
        for pod in pending:
            if node.add_pod(pod):
                placed.add(pod)
            else:
                still.append(pod)
        pending = still
        waits += len(pending)
        peak = max(peak, len(placed))
        node.tick()
        idle += node.available()
        ticks += 1
        node.advance(node.tick_s)
    calls = node.calls - start_calls
    return ChurnResult(len(trace), sum(calls.values()), dict(calls), waits, peak, idle / max(ticks, 1))
