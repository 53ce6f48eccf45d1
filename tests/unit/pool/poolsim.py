"""A simulator of one node's pool: applies each pool Decision through the cloud, and runs pods against it.

The parts the pool math never sees are the real ones, except time: EC2 is the in-memory fake
(:mod:`vpccni.cloud.fake`, the one model of EC2 in the tests; the node's shape becomes an instance type
registered with the fake), the datastore is ipamd's :class:`~ipamd.state.datastore.Datastore` (it hands
out addresses and cools released ones), and the clock is the simulator's ``now``. Mutating EC2 calls are
counted from the fake's call log.

EC2 refusals and unsafe requests raise :class:`SimRefused`, so a test fails when the pool math asks for
something impossible: over ENI slots or past the ENI limit (the fake refuses, as EC2 does), releasing an
assigned or cooling CIDR or freeing a busy ENI (the datastore refuses), freeing the primary ENI (EC2
refuses the detach) or an ENI younger than the minimum age (checked here). After every decision that
changed the pool, the datastore must hold exactly the CIDRs EC2 shows.

How a pod gets an address (``placement``): ``"lru"`` is the datastore's own rule (never-used addresses
first, oldest CIDR first, then the one released longest ago); ``"pack"`` (lowest device number first:
drains the highest ENIs, the worst case for ENI churn) and ``"spread"`` (the ENI with the most free
addresses, like aws's random map order on average) are adversarial orders the datastore does not have,
so the simulator picks a free, cooled address itself and holds it through ``Datastore.restore`` (which
still refuses an address the node does not hold or that is taken).
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections import Counter
from dataclasses import dataclass, replace

from ipamd.pool import Decision, NodeCapacity, PoolState, PoolTargets, PoolTimers, decide, pool_stats
from ipamd.pool.window import PeakWindow
from ipamd.state.datastore import Allocation, AllocationKey, Datastore, DatastoreError
from vpccni.cloud.base import NetworkInterface
from vpccni.cloud.fake import FakeCloud, FakeProvider
from vpccni.config.limits import InstanceLimits
from vpccni.errors import CloudError

SIM_VPC, SIM_SUBNET = "10.0.0.0/16", "10.0.0.0/16"  # room for 15 ENIs x 49 prefixes (p3dn)
PLACEMENTS = ("lru", "pack", "spread")


class SimRefused(AssertionError):
    """EC2 would refuse this request, or it would hurt a pod."""


def _pod_cidrs(eni: NetworkInterface) -> list[str]:
    return [*(f"{a}/32" for a in eni.secondary_addresses), *eni.prefixes]


def _key(pod: str) -> AllocationKey:
    return AllocationKey("sim", pod, "eth0")


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
        self.decisions: list[Decision] = []
        self.pod_pool_shrank: list[bool] = []  # per decision: did it give back pod-serving capacity
        self.pods: dict[str, str] = {}  # pod -> its address
        self._unchanged_since_tick: PoolState | None = None  # the last tick's state, while still current
        self._pod_ids = itertools.count()

        self.cloud = FakeCloud(seed=0)
        shape = f"sim.{capacity.max_enis}x{capacity.slots_per_eni}"
        self.cloud.register_instance_type(InstanceLimits(shape, capacity.max_enis, capacity.slots_per_eni,
                                                         0, "nitro", False, 1, 2))
        vpc = self.cloud.create_vpc(SIM_VPC)
        self.subnet = self.cloud.create_subnet(vpc, SIM_SUBNET)
        self.node = self.cloud.add_node(shape, subnet=self.subnet, security_groups=[])
        self.ec2 = FakeProvider(self.cloud)
        self.attachments: dict[str, str] = {}  # ENI -> attachment id, as the reconciler caches them
        self.datastore = Datastore(prefix_delegation=targets.prefix_delegation, cooldown_s=cooldown_s,
                                   clock=lambda: self.now)
        self.datastore.add_eni(self.node.primary_eni_id, 0, True, SIM_SUBNET,
                               excluded=not capacity.primary_serves_pods, seen_at=0.0)
        self._setup = self.cloud.mutations()  # calls made to build the node are not the pool's

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
        """A node holding ``state`` now, built through EC2 (each ENI at its device number with as many
        CIDRs as the state's; EC2 picks the addresses): its pods stay, its cooling addresses cool on from a
        deterministic point (released evenly over the last cooldown period)."""
        node = cls(capacity, targets, timers, placement=placement, peak_window_s=peak_window_s)
        node.last_decrease = -state.seconds_since_last_decrease
        node.datastore.remove_eni(node.node.primary_eni_id)
        for e in state.enis:
            eni_id = node.node.primary_eni_id if e.is_primary else node._attach(len(e.cidrs), e.device_number)
            if e.is_primary and e.cidrs:
                node._assign(eni_id, len(e.cidrs))
            [eni] = node.ec2.describe_interfaces([eni_id])
            node.datastore.add_eni(eni_id, e.device_number, e.is_primary, SIM_SUBNET, excluded=e.excluded,
                                   seen_at=-e.age_s)
            real = node.datastore.add_cidrs(eni_id, _pod_cidrs(eni))
            for c, cidr in zip(e.cidrs, real, strict=True):
                addresses = [str(a) for a in ipaddress.IPv4Network(cidr)]
                for address in addresses[:c.assigned]:
                    pod = f"pod-{next(node._pod_ids)}"
                    node.datastore.restore(Allocation(_key(pod), address, eni_id))
                    node.pods[pod] = address
                for k, address in enumerate(addresses[c.assigned:c.assigned + c.cooling]):
                    node.datastore.restore_cooldown(address, -node.cooldown_s * (k + 1) / (c.cooling + 1))
        node._setup = node.cloud.mutations()
        node._check_in_step()
        return node

    # --- what the datastore reports ----------------------------------------------------------------------

    def state(self) -> PoolState:
        state = self.datastore.pool_state(self.now, seconds_since_last_decrease=self.now - self.last_decrease)
        if self.peak is None:
            return state
        in_use = pool_stats(state, self.capacity.primary_serves_pods).in_use
        return replace(state, peak_in_use=self.peak.observe(self.now, in_use))

    @property
    def enis(self) -> dict[str, object]:
        return {e.eni_id: e for e in self.datastore.enis()}

    def eni_at(self, device_number: int) -> str:
        return next(e.eni_id for e in self.datastore.enis() if e.device_number == device_number)

    def cidr_counts(self) -> list[int]:
        """CIDRs per ENI in device order, as EC2 holds them (the shape of aws's "IPs per ENI" column)."""
        return [len(_pod_cidrs(e)) for e in self.cloud.interfaces(self.node.instance_id)]

    def total_addresses(self) -> int:
        return sum(len(e.secondary_addresses) + 16 * len(e.prefixes)
                   for e in self.cloud.interfaces(self.node.instance_id))

    def available(self) -> int:
        """Addresses a pod could get now (the pool math's count). The churn loop asks right after each
        tick: when that tick changed nothing, its state is still the pool's (building one is the
        simulator's main cost)."""
        state = self._unchanged_since_tick or self.datastore.pool_state(self.now)  # no peak sample
        return pool_stats(state, self.capacity.primary_serves_pods).available

    # --- EC2 ---------------------------------------------------------------------------------------------

    def _assign(self, eni_id: str, count: int) -> list[str]:
        if self.targets.prefix_delegation:
            return self.ec2.assign_prefixes(eni_id, count)
        return [f"{a}/32" for a in self.ec2.assign_addresses(eni_id, count)]

    def _attach(self, count: int, device: int) -> str:
        pd = self.targets.prefix_delegation
        eni = self.ec2.create_interface(
            subnet_id=self.subnet.subnet_id, security_group_ids=[], description="aws-K8S-sim", tags={},
            secondary_address_count=0 if pd else count, prefix_count=count if pd else 0)
        attachment = self.ec2.attach_interface(eni.interface_id, self.node.instance_id, device)
        self.ec2.set_delete_on_termination(eni.interface_id, attachment, True)
        self.attachments[eni.interface_id] = attachment
        return eni.interface_id

    def apply(self, d: Decision) -> int:
        """Apply a decision through EC2 and the datastore; returns the mutating calls it cost."""
        before = self.cloud.mutation_count
        try:
            self._apply(d)
        except (CloudError, DatastoreError) as refused:
            raise SimRefused(f"{type(refused).__name__}: {refused} (decision {d})") from refused
        if d.changes_pool:
            self._check_in_step()
        return self.cloud.mutation_count - before

    def _apply(self, d: Decision) -> None:
        for eni_id, count in d.assign:
            info = self.datastore.eni(eni_id)
            if info is None or info.excluded or count <= 0:
                raise SimRefused(f"assign {count} on {eni_id}: no such pod ENI or empty request")
            self.datastore.add_cidrs(eni_id, self._assign(eni_id, count))
        if d.new_eni:
            device = self.ec2.describe_instance(self.node.instance_id).lowest_free_device_index()
            assert device is not None
            eni_id = self._attach(d.new_eni, device)
            [eni] = self.ec2.describe_interfaces([eni_id])
            self.datastore.add_eni(eni_id, device, False, SIM_SUBNET)
            self.datastore.add_cidrs(eni_id, _pod_cidrs(eni))
        for eni_id, cidrs in d.release:
            if self.datastore.eni(eni_id) is None or not cidrs:
                raise SimRefused(f"release on unknown ENI {eni_id} or empty list")
            self.datastore.remove_cidrs(eni_id, cidrs)  # InUse: a CIDR with an address assigned or cooling
            if self.targets.prefix_delegation:
                self.ec2.unassign_prefixes(eni_id, cidrs)
            else:
                self.ec2.unassign_addresses(eni_id, [c.split("/")[0] for c in cidrs])
            self.last_decrease = self.now
        if d.free_eni is not None:  # in ipamd's order: the datastore, then detach, then delete
            info = self.datastore.eni(d.free_eni)
            if info is None:
                raise SimRefused(f"free of unknown {d.free_eni}")
            if self.now - info.seen_at < self.timers.min_eni_age_s:
                raise SimRefused(f"free of {d.free_eni}: younger than {self.timers.min_eni_age_s} s")
            self.datastore.remove_eni(d.free_eni)  # InUse: addresses assigned or cooling
            attachment = self.attachments.pop(d.free_eni, None) or self._attachment_of(d.free_eni)
            if not self.ec2.detach_interface(attachment):  # EC2 refuses the primary's (device 0)
                raise SimRefused(f"free of {d.free_eni}: not attached")
            self.ec2.delete_interface(d.free_eni)

    def _attachment_of(self, eni_id: str) -> str:
        [eni] = self.ec2.describe_interfaces([eni_id])
        assert eni.attachment is not None
        return eni.attachment.attachment_id

    def _check_in_step(self) -> None:
        ec2 = {e.interface_id: set(_pod_cidrs(e)) for e in self.cloud.interfaces(self.node.instance_id)}
        ours = {e.eni_id: set(self.datastore.cidrs_of(e.eni_id)) for e in self.datastore.enis()}
        assert ours == ec2, f"the datastore and EC2 disagree: {ours} != {ec2}"

    @property
    def calls(self) -> Counter[str]:
        """Successful mutating EC2 calls the pool made, by action."""
        return self.cloud.mutations() - self._setup

    @property
    def mutating_calls(self) -> int:
        return sum(self.calls.values())

    # --- the pool loop and the clock ---------------------------------------------------------------------

    def tick(self) -> Decision:
        """One pool-loop pass at the current time: decide, apply, record."""
        state = self.state()
        d = decide(state, self.targets, self.capacity, self.timers)
        excluded = {e.eni_id for e in self.datastore.enis() if e.excluded}
        touched = {eni_id for eni_id, _ in d.release} | ({d.free_eni} if d.free_eni else set())
        spent = self.apply(d)
        assert spent == d.mutating_calls, (spent, d)
        self.decisions.append(d)
        # A shrink of the pod pool gives back a pod-serving ENI or CIDR; an ENI that serves no pods
        # (excluded subnet) may go while the pool is short, to free its slot for growth.
        self.pod_pool_shrank.append(bool(touched - excluded))
        self._unchanged_since_tick = None if d.changes_pool else state
        return d

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self._unchanged_since_tick = None

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

    # --- pods --------------------------------------------------------------------------------------------

    def _pick(self) -> tuple[str, str] | None:
        """(ENI, free cooled address) by the "pack" or "spread" order."""
        serving = {e.eni_id for e in self.datastore.enis() if not e.excluded}
        mode_is_prefix = self.targets.prefix_delegation
        options = [(e, c) for e in self.datastore.stats(self.now).enis if e.eni_id in serving
                   for c in e.cidrs if c.is_prefix == mode_is_prefix and c.size - c.assigned - c.cooling > 0]
        if not options:
            return None
        if self.placement == "spread":
            def free_on(eni_id: str) -> int:
                return sum(c.size - c.assigned - c.cooling for e, c in options if e.eni_id == eni_id)

            eni, cidr = max(options, key=lambda ec: (free_on(ec[0].eni_id), -ec[0].device_number))
        else:
            eni, cidr = options[0]
        cooling = {a for a, _ in self.datastore.cooling(self.now)}
        address = next(str(a) for a in ipaddress.IPv4Network(cidr.cidr)
                       if self.datastore.by_address(str(a)) is None and str(a) not in cooling)
        return eni.eni_id, address

    def add_pod(self, pod: str) -> bool:
        """Give ``pod`` an address; False when the pool has none available."""
        if self.placement == "lru":
            held = self.datastore.assign(_key(pod))
        else:
            picked = self._pick()
            held = None if picked is None else self.datastore.restore(
                Allocation(_key(pod), picked[1], picked[0], assigned_at=self.now))
        if held is None:
            return False
        self.pods[pod] = held.address
        self._unchanged_since_tick = None
        return True

    def del_pod(self, pod: str) -> None:
        del self.pods[pod]
        self._unchanged_since_tick = None
        assert self.datastore.release(_key(pod)) is not None, pod

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
