"""A node's recorded churn, replayed through ipamd's own code under other settings: ``vpccni tune``'s engine.

:func:`pod_spans` turns a journal (:mod:`ipamd.state.journal`) into pods: each arrives at its first ADD
(got an address or not) and leaves at its DEL; a pod whose DEL comes first was there before the journal
began, and one without a DEL is still running. :func:`replay` runs one simulated node
(:class:`~vpccni.sim.node.SimNode`: the real datastore, reconciler and pool loop over the local cloud's
EC2 semantics, in virtual time) of the journal's instance type with the journal's settings plus the
overrides, ADDs each pod when it arrived, retries a refused ADD as the node's kubelet did (the interval
is read from the journal's own retries), DELs it when it left, and samples the pool every pool-loop
period. The result is :class:`Replay`; the figures are :mod:`vpccni.sim.forecast`'s.

Settings go through :meth:`vpccni.config.settings.Settings.from_env` exactly as ipamd reads them: a value
ipamd would refuse raises the same ConfigError, with the same one-line messages.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from ipamd.state.journal import Journal
from vpccni.config.settings import Settings
from vpccni.localcloud.ec2.latency import LatencyProfile
from vpccni.localcloud.ec2.throttle import ThrottleConfig
from vpccni.sim import fibers, vloop
from vpccni.sim.ec2 import SimAccount
from vpccni.sim.node import NodePolicy, SimNode
from vpccni.wire.protocol import NoIpReason

DEFAULT_RETRY_S = 2.0  # kubelet retries a failed sandbox about this often (bench churn's figure)
DEFAULT_POOL_LOOP_S = 5.0
SUBNET_CIDR = "10.0.0.0/16"  # room for any one node: the forecast is about the node, not the subnet
_SETUP = frozenset({"CreateVpc", "CreateSubnet", "CreateSecurityGroup", "RunInstances"})


@dataclass(frozen=True)
class PodSpan:
    pod: str
    arrive_s: float  # seconds since the journal's first event
    depart_s: float | None  # None: still running when the journal ends


@dataclass(frozen=True)
class Sample:
    t: float
    held: int  # addresses in the pool's CIDRs
    in_use: int  # assigned + cooling
    free: int  # what an ADD could get now
    subnet: int  # private addresses the node's ENIs hold in the subnet (primaries included)
    at_eni_limit: bool


@dataclass(frozen=True)
class Replay:
    env: Mapping[str, str]  # the settings replayed (the journal's + the overrides)
    duration_s: float
    pods: int
    waits: tuple[float, ...]  # per pod that waited: seconds from arrival to its address (or its DEL)
    never: int  # pods that left (or the run ended) before they got an address
    calls: Mapping[str, int]  # EC2 requests by action (the node's start included)
    samples: tuple[Sample, ...]
    retry_s: float


def pod_spans(journal: Journal) -> list[PodSpan]:
    """The pods of a journal, by arrival (pure)."""
    if not journal.events:
        return []
    origin = journal.events[0].t
    arrive: dict[str, float] = {}
    spans: list[PodSpan] = []
    for event in journal.events:
        t = event.t - origin
        if event.kind in ("A", "N"):
            arrive.setdefault(event.pod, t)
        elif event.kind == "D":
            spans.append(PodSpan(event.pod, arrive.pop(event.pod, 0.0), t))
    spans += [PodSpan(pod, t, None) for pod, t in arrive.items()]
    return sorted(spans, key=lambda span: (span.arrive_s, span.pod))


def retry_interval(journal: Journal) -> float:
    """How often the node's kubelet retried a refused ADD: the median gap between a pod's consecutive ADDs
    in the journal; without any, bench churn's 2 s on the journal's clock (its pool-loop period says how
    compressed that clock is)."""
    last: dict[str, float] = {}
    gaps: list[float] = []
    for event in journal.events:
        if event.kind in ("A", "N"):
            if event.pod in last:
                gaps.append(event.t - last[event.pod])
            last[event.pod] = event.t
    if gaps:
        return max(statistics.median(gaps), 1e-3)
    loop = float(journal.header.get("settings", {}).get("VPCCNI_POOL_LOOP_PERIOD", DEFAULT_POOL_LOOP_S))
    return DEFAULT_RETRY_S * loop / DEFAULT_POOL_LOOP_S


def settings_for(journal: Journal, overrides: Mapping[str, str]) -> tuple[dict[str, str], Settings]:
    """The environment to replay and ipamd's reading of it (ConfigError exactly as ipamd would raise)."""
    env = {**journal.header.get("settings", {}), **overrides}
    env = {k: v for k, v in env.items() if v != ""}  # an empty value means unset, as in ipamd
    return env, Settings.from_env(env)


async def _replay(journal: Journal, env: dict[str, str], *, profile: str | LatencyProfile,
                  retry_s: float, seed: int) -> Replay:
    loop = asyncio.get_running_loop()
    instance_type = str(journal.header.get("instance_type") or "m5.large")
    account = SimAccount(clock=loop.time, profile=profile, throttle=ThrottleConfig.aws_documented(),
                         seed=seed)
    vpc = account.create_vpc(SUBNET_CIDR)
    subnet = account.create_subnet(vpc, SUBNET_CIDR, f"{account.region}a", {"kubernetes.io/role/cni": "1"})
    group = account.create_security_group(vpc, "tune")
    instance = account.run_instance(instance_type, subnet, [group])
    subnet_free_at_start = account.free_addresses(subnet.subnet_id)
    random.seed(seed)
    policy = NodePolicy("tune", env=env)
    node = SimNode(instance, policy=policy, settings=policy.settings(), client=account.node_client(),
                   pool=fibers.Fibers(), rng=random.Random(seed))
    spans = pod_spans(journal)
    end = max([s.depart_s or s.arrive_s for s in spans], default=0.0)
    account.open()
    waits: list[float] = []
    never = 0

    async def life(span: PodSpan) -> None:
        nonlocal never
        await asyncio.sleep(span.arrive_s)
        leave = span.depart_s if span.depart_s is not None else end
        first = True
        while node.try_add(span.pod) is not None:
            first = False
            if loop.time() + retry_s > leave:
                never += 1
                waits.append(leave - span.arrive_s)
                return
            await asyncio.sleep(retry_s)
        if not first:
            waits.append(loop.time() - span.arrive_s)
        if span.depart_s is not None:
            await asyncio.sleep(max(span.depart_s - loop.time(), 0.0))
            node.release(span.pod)

    samples: list[Sample] = []
    period = node.settings.pool_loop_period

    async def sample() -> None:
        while True:
            stats = node.datastore.stats()
            current = node.status.current
            samples.append(Sample(loop.time(), stats.total, stats.assigned + stats.cooling, stats.free,
                                  subnet_free_at_start - account.free_addresses(subnet.subnet_id),
                                  current is not None and current.reason is NoIpReason.ENI_LIMIT))
            await asyncio.sleep(period)

    await node.start()
    runner = asyncio.create_task(node.run())
    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(life(span) for span in spans))
    await asyncio.sleep(max(end - loop.time(), 0.0))
    for task in (runner, sampler):
        task.cancel()
    await asyncio.gather(runner, sampler, return_exceptions=True)
    calls = Counter({action: c.calls for action, c in account.counters().items() if action not in _SETUP})
    return Replay(env, end, len(spans), tuple(waits), never, dict(calls), tuple(samples), retry_s)


def replay(journal: Journal, overrides: Mapping[str, str] | None = None, *,
           profile: str | LatencyProfile = "realistic", retry_s: float | None = None,
           seed: int = 1) -> Replay:
    """The journal's churn under its settings plus ``overrides`` (ConfigError if ipamd would refuse them)."""
    env, _ = settings_for(journal, overrides or {})
    return vloop.run(_replay(journal, env, profile=profile,
                             retry_s=retry_s if retry_s is not None else retry_interval(journal), seed=seed))
