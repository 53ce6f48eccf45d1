"""A fleet boot, simulated: every node of a :class:`~vpccni.sim.scenario.FleetSpec` starts ipamd at once
against one account's EC2, its pods arrive over the first minute, and each ADD that finds no address is
retried as kubelet retries a failed sandbox, until every pod has an address (or the deadline passes).

:func:`run_fleet` builds the account (VPC, subnets, instances) through the local cloud's EC2 semantics,
opens its buckets at virtual time 0 and drives one :class:`~vpccni.sim.node.SimNode` per instance on a
:class:`~vpccni.sim.vloop.VirtualTimeLoop`. It returns plain figures (:class:`FleetRun`): when the last pod
got its address, calls and throttles per action as EC2 counted them, every pod's wait, addresses held
and idle over time, and the subnet-full refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from vpccni.localcloud.ec2.latency import LatencyProfile
from vpccni.localcloud.ec2.throttle import ThrottleConfig
from vpccni.sim import fibers, vloop
from vpccni.sim.ec2 import SimAccount, SimInstance, SimSubnet
from vpccni.sim.kubeapi import SimConfigMap
from vpccni.sim.node import NodePolicy, SimNode
from vpccni.sim.scenario import CNI_TAG, FleetSpec, NodePlan, fleet_plan

log = logging.getLogger(__name__)

KUBELET_BACKOFF_S = 10.0  # kubelet's pod worker retries a failed sync after this, jittered by up to 50 %
SAMPLE_EVERY_S = 10.0
DEFAULT_DEADLINE_S = 4 * 3600.0
SUBNET_FULL = "InsufficientFreeAddressesInSubnet"


@dataclass
class PodRecord:
    node: int
    arrive_s: float
    addressed_s: float | None = None
    attempts: int = 0
    last_refusal: str = ""

    @property
    def waited_s(self) -> float | None:
        return None if self.addressed_s is None else self.addressed_s - self.arrive_s


@dataclass(frozen=True)
class Sample:
    t: float
    pods_addressed: int
    held: int  # addresses the nodes' pools hold (assigned, cooling or free)
    in_use: int  # assigned


@dataclass
class FleetRun:
    policy: str
    nodes: int
    pods: list[PodRecord]
    calls: dict[str, dict[str, int]]  # action -> calls, throttled, errors (as EC2 counted them)
    samples: list[Sample]
    end_s: float  # virtual time the run stopped
    all_addressed_s: float | None  # when the last pod got its address; None if some never did
    node_enis: list[int]  # ENIs each node holds at the end
    subnet_full_nodes: int  # nodes that met InsufficientFreeAddressesInSubnet
    wall_s: float
    fiber_threads: int
    failed_passes: int
    node_budget_waits: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def addressed(self) -> int:
        return sum(1 for p in self.pods if p.addressed_s is not None)


async def _build(account: SimAccount, spec: FleetSpec, plans: list[NodePlan]
                 ) -> tuple[dict[str, SimSubnet], list[tuple[NodePlan, SimInstance]]]:
    vpc_id = account.create_vpc(spec.vpc_cidrs[0])
    for extra in spec.vpc_cidrs[1:]:
        account.associate_vpc_cidr(vpc_id, extra)
    zone_name = {s.zone: f"{account.region}{s.zone}" for s in spec.subnets}
    subnets = {s.name: account.create_subnet(vpc_id, s.cidr, zone_name[s.zone],
                                             dict([CNI_TAG]) if s.tagged else None) for s in spec.subnets}
    group = account.create_security_group(vpc_id, "fleet-nodes")
    instances = [(plan, account.run_instance(plan.instance_type, subnets[plan.subnet], [group]))
                 for plan in plans]
    return subnets, instances


async def _fleet(spec: FleetSpec, policy: NodePolicy, *, profile: str | LatencyProfile,
                 throttle: ThrottleConfig | None, deadline_s: float,
                 progress: Callable[[str], None] | None) -> FleetRun:
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    rng = random.Random(spec.seed)
    random.seed(spec.seed)  # tenacity's jitter draws from the module's generator
    plans = fleet_plan(spec)
    account = SimAccount(clock=loop.time, profile=profile, throttle=throttle, seed=spec.seed)
    _, instances = await _build(account, spec, plans)
    settings = policy.settings()
    pool = fibers.Fibers()
    client = account.node_client()
    ledger = SimConfigMap() if policy.fleet_share > 0 else None
    nodes = [SimNode(instance, policy=policy, settings=settings, client=client, pool=pool,
                     rng=random.Random(rng.random()), ledger=ledger) for _, instance in instances]
    pods = [PodRecord(plan.index, arrive) for plan in plans for arrive in plan.arrivals]
    pending = len(pods)
    all_done = asyncio.Event()
    account.open()

    async def boot(node: SimNode) -> None:
        await node.start()
        await node.run()

    async def pod_life(record: PodRecord, name: str, jitter: random.Random) -> None:
        nonlocal pending
        node = nodes[record.node]
        await asyncio.sleep(record.arrive_s)
        while True:
            record.attempts += 1
            refusal = node.try_add(name)
            if refusal is None:
                break
            record.last_refusal = refusal
            await asyncio.sleep(KUBELET_BACKOFF_S * (1 + 0.5 * jitter.random()))
        record.addressed_s = loop.time()
        pending -= 1
        if pending == 0:
            all_done.set()

    samples: list[Sample] = []

    async def sample() -> None:
        while True:
            held = sum(n.held() for n in nodes)
            in_use = sum(n.assigned() for n in nodes)
            samples.append(Sample(loop.time(), len(pods) - pending, held, in_use))
            if progress is not None and len(samples) % 30 == 1:
                progress(f"{policy.name}: t={loop.time():.0f}s {len(pods) - pending}/{len(pods)} pods, "
                         f"{sum(c.calls for c in account.counters().values())} calls, "
                         f"wall {time.perf_counter() - began:.0f}s")
            await asyncio.sleep(SAMPLE_EVERY_S)

    tasks = [asyncio.create_task(boot(node)) for node in nodes]
    jitter = random.Random(spec.seed + 1)
    tasks += [asyncio.create_task(pod_life(record, f"pod-{i}", random.Random(jitter.random())))
              for i, record in enumerate(pods)]
    sampler = asyncio.create_task(sample())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_done.wait(), deadline_s)
    end = loop.time()
    samples.append(Sample(end, len(pods) - pending, sum(n.held() for n in nodes),
                          sum(n.assigned() for n in nodes)))
    for task in (*tasks, sampler):
        task.cancel()
    await asyncio.gather(*tasks, sampler, return_exceptions=True)
    counters = {action: c.to_json() for action, c in sorted(account.counters().items())
                if action not in _SETUP_ACTIONS}
    done = [p.addressed_s for p in pods if p.addressed_s is not None]
    return FleetRun(
        policy=policy.name, nodes=len(nodes), pods=pods, calls=counters, samples=samples, end_s=end,
        all_addressed_s=max(done) if len(done) == len(pods) else None,
        node_enis=[len(n.datastore.enis()) for n in nodes],
        subnet_full_nodes=sum(1 for n in nodes if n.met_subnet_full),
        wall_s=time.perf_counter() - began, fiber_threads=pool.threads,
        failed_passes=sum(n.failed_passes for n in nodes),
        extra={"ledger_reads": ledger.reads, "ledger_writes": ledger.writes,
               "ledger_conflicts": ledger.conflicts} if ledger is not None else {})


# What building the scenario called (before the buckets opened): not the fleet's calls.
_SETUP_ACTIONS = frozenset({"CreateVpc", "AssociateVpcCidrBlock", "CreateSubnet", "CreateSecurityGroup",
                            "RunInstances"})


def run_fleet(spec: FleetSpec, policy: NodePolicy, *, profile: str | LatencyProfile = "realistic",
              throttle: ThrottleConfig | None = None, deadline_s: float = DEFAULT_DEADLINE_S,
              progress: Callable[[str], None] | None = None) -> FleetRun:
    """Boot ``spec``'s fleet under ``policy`` in virtual time; blocks for the run's wall time."""
    return vloop.run(_fleet(spec, policy, profile=profile, throttle=throttle, deadline_s=deadline_s,
                            progress=progress))


def refusal_reasons(run: FleetRun) -> Counter[str]:
    """Why ADDs were refused (the last refusal of each pod that waited)."""
    return Counter(p.last_refusal for p in run.pods if p.last_refusal)
