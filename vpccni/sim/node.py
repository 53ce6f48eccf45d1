"""One simulated node: ipamd's datastore, reconciler and pool loop, in virtual time.

What runs is ipamd's own code: :class:`~ipamd.state.datastore.Datastore`,
:class:`~ipamd.reconcile.reconciler.Reconciler` (with its pool decisions, EC2 sync and refusal handling),
:class:`~ipamd.reconcile.status.GrowthStatus`, the pool loop's :class:`~ipamd.app.tasks.Wakeup` and the
periodic EC2 sync. An ADD or DEL does what the request handler does with the datastore (``assign`` /
``release`` into cooldown, then a poke of the pool loop), without plumbing or a checkpoint write. Cloud
calls go through the real :class:`~vpccni.cloud.aws.provider.AwsProvider` and
:class:`~vpccni.cloud.retry.CallRunner` (API budget, retries), each in a fiber, so its waits are virtual.

What is not ipamd's: the start reads the instance with one DescribeInstances (as ``boot.discover``) but
no IMDS (the IMDS check of the pool loop is off: it costs EC2 nothing and the local cloud's IMDS is not
simulated), and the daemon's supervision (a pass that fails is counted, never fatal).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipamd.app.tasks import Wakeup
from ipamd.reconcile.context import NodeContext
from ipamd.reconcile.node import NodeFacts, prefix_delegation
from ipamd.reconcile.reconciler import Reconciler
from ipamd.reconcile.status import GrowthStatus
from ipamd.state.datastore import AllocationKey, Datastore
from ipamd.state.recovery import recover
from vpccni.cloud.aws.buckets import DOCUMENTED, bucket_of
from vpccni.cloud.aws.errors import map_error
from vpccni.cloud.aws.provider import AwsProvider
from vpccni.cloud.budget import ApiBudget, BucketSettings, BudgetSettings
from vpccni.cloud.fleetbudget import FleetBudget, LedgerStore, Rate
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.config import limits as limits_mod
from vpccni.config.settings import Settings
from vpccni.errors import RetryableError
from vpccni.sim import fibers
from vpccni.sim.ec2 import SimInstance
from vpccni.wire.protocol import NoIpReason

T = TypeVar("T")
log = logging.getLogger(__name__)

EPOCH = 1_700_000_000.0  # the wall clock of simulated time 0 (cooldowns and checkpoints are wall-clock)
NETWORK = "vpccni"
POKE_MIN_GAP_S = 0.05  # ipamd.app.daemon's: a burst of ADDs wakes the loop once
START_RETRY_S = (0.2, 5.0)  # ipamd retries its start-up describes from 0.2 s, doubling to 5 s


@dataclass(frozen=True)
class NodePolicy:
    """How a node's ipamd behaves beyond its settings: what the simulator lets a policy vary.

    ``budget``: True = the per-node API budget the settings size (ipamd's); False = none (aws-node has
    none). ``poke``: an ADD or DEL wakes the pool loop (ipamd) or the loop only runs every period.
    ``retry``: the CallRunner's policy (ipamd's own, or an SDK's default retryer).
    ``subnet_full_per_subnet``: a full subnet stops growth on its ENIs only (ipamd) or all growth for the
    back-off (aws-node). ``fleet_share``: 0 = no fleet budget; else every call reserves a token in the
    fleet's ledger, paced at this share of the account's documented buckets.
    """

    name: str
    env: dict[str, str] = field(default_factory=dict)
    budget: bool = True
    poke: bool = True
    retry: RetrySettings = field(default_factory=RetrySettings)
    subnet_full_per_subnet: bool = True
    fleet_share: float = 0.0  # > 0: a fleet budget over this share of the account's buckets (FleetBudget)
    # How much longer, in cluster seconds, the constants a compressed real run keeps on the wall clock are
    # (retry back-off and limit, the budget's AIMD intervals): a run at 25 cluster s per wall s has them
    # 25 times longer. 1 = a real node. For comparing with such a run only.
    wall_factor: float = 1.0

    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def _stretched(sizes: BudgetSettings, factor: float) -> BudgetSettings:
    """The budget with its AIMD intervals ``factor`` times longer (see NodePolicy.wall_factor)."""
    def stretch(bucket: BucketSettings) -> BucketSettings:
        return dataclasses.replace(bucket, quiet_interval_s=bucket.quiet_interval_s * factor,
                                   decrease_cooldown_s=bucket.decrease_cooldown_s * factor)

    return dataclasses.replace(sizes, mutating=stretch(sizes.mutating), describe=stretch(sizes.describe),
                               max_wait_s=sizes.max_wait_s * factor)


class _NoCommit:
    """The checkpoint is not written in the simulator: durability costs no virtual time."""

    async def commit(self) -> None:
        return None


class _SimContext(NodeContext):
    """ipamd's NodeContext whose blocking cloud calls run as fibers (their sleeps are virtual)."""

    fibers: fibers.Fibers

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return await self.fibers.call(fn, *args, **kwargs)


class NodeCalls:
    """The node's CallObserver: every attempt it sent, and the throttles, like ipamd's metrics feed."""

    def __init__(self, status: Callable[[], GrowthStatus | None]) -> None:
        self._status = status
        self.attempts = 0
        self.throttled = 0
        self.errors = 0
        self.codes: Counter[str] = Counter()

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        self.attempts += 1
        if error_code is not None:
            self.errors += 1
            self.codes[error_code] += 1
        if throttled:
            self.throttled += 1
            status = self._status()
            if status is not None:
                status.note_throttle()


class SimNode:
    """One node's ipamd in the simulator. ``start()`` then ``run()`` (its tasks); ADD/DEL with
    :meth:`add` / :meth:`delete`."""

    def __init__(self, instance: SimInstance, *, policy: NodePolicy, settings: Settings, client: Any,
                 pool: fibers.Fibers, rng: random.Random, ledger: LedgerStore | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.instance = instance
        self.policy = policy
        self.settings = s = settings
        self.monotonic: Callable[[], float] = loop.time
        self.wall: Callable[[], float] = lambda: EPOCH + loop.time()
        self._fibers = pool
        self._rng = rng
        self.calls = NodeCalls(lambda: getattr(self, "status", None))
        limits = limits_mod.lookup(instance.instance_type)
        if limits is None:
            raise ValueError(f"{instance.instance_type}: not in the limits table")
        self.limits = limits
        sizes = (BudgetSettings.from_sizes(
            mutating_capacity=s.api_mutating_bucket, mutating_rate=s.api_mutating_refill,
            describe_capacity=s.api_describe_bucket, describe_rate=s.api_describe_refill)
            if policy.budget else BudgetSettings.unlimited())
        if policy.wall_factor != 1.0:
            sizes = _stretched(sizes, policy.wall_factor)
        self.budget = ApiBudget(sizes, clock=self.monotonic, sleep=fibers.sleep)
        if policy.fleet_share > 0 and ledger is not None:
            rates = {name: Rate(b.capacity * policy.fleet_share, b.refill_per_s * policy.fleet_share)
                     for name, b in DOCUMENTED.items()}
            self.budget = FleetBudget(self.budget, ledger, rates, bucket_of, clock=self.wall,
                                      sleep=fibers.sleep, rng=random.Random(rng.random()))
        retry = policy.retry if policy.wall_factor == 1.0 else dataclasses.replace(
            policy.retry, max_total_s=policy.retry.max_total_s * policy.wall_factor,
            backoff_base_s=policy.retry.backoff_base_s * policy.wall_factor,
            backoff_max_s=policy.retry.backoff_max_s * policy.wall_factor)
        runner = CallRunner(map_error=map_error, retry=retry, budget=self.budget, observer=self.calls,
                            clock=self.monotonic, sleep=fibers.sleep)
        self.provider = AwsProvider(client, runner)
        self.prefix_delegation = prefix_delegation(s, limits)
        self.datastore = Datastore(prefix_delegation=self.prefix_delegation, cooldown_s=s.ip_cooldown_period,
                                   clock=self.wall)
        self.status = GrowthStatus(self.datastore, clock=self.wall, monotonic=self.monotonic)
        self.wakeup = Wakeup(s.pool_loop_period, POKE_MIN_GAP_S, monotonic=self.monotonic)
        self.ready = False  # the handler's: ADDs are answered once recovery is done
        self.reconciler: Reconciler | None = None
        self.failed_passes = 0
        self.started_at: float | None = None  # virtual time the first pool pass ended

    # --- start and tasks -------------------------------------------------------------------------

    async def _until_answered(self, fn: Callable[..., T], *args: object) -> T:
        delay = START_RETRY_S[0]
        while True:
            try:
                return await self._fibers.call(fn, *args)
            except RetryableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_S[1])

    async def start(self) -> None:
        """ipamd's start: DescribeInstances, the EC2 sync, recovery (no checkpoint), ready, first pass."""
        info = await self._until_answered(self.provider.describe_instance, self.instance.instance_id)
        facts = NodeFacts(info.instance_id, info.instance_type, info.availability_zone, "sim", info.vpc_id,
                          info.subnet_id, info.primary_interface_id, "", info.security_group_ids)
        ctx = _SimContext(self.settings, facts, self.limits, self.provider, self.datastore, _NoCommit(),
                          self.prefix_delegation, sleep=asyncio.sleep)
        ctx.fibers = self._fibers
        self.reconciler = r = Reconciler(ctx, self.status, monotonic=self.monotonic, clock=self.wall,
                                         subnet_full_per_subnet=self.policy.subnet_full_per_subnet)
        views = await self._until_answered_async(r.startup_views)
        recover(self.datastore, None, views)
        self.ready = True
        await self._pass()
        self.started_at = self.monotonic()

    async def _until_answered_async(self, step: Callable[[], Any]) -> Any:
        delay = START_RETRY_S[0]
        while True:
            try:
                return await step()
            except RetryableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, START_RETRY_S[1])

    async def _pass(self) -> None:
        assert self.reconciler is not None
        try:
            await self.reconciler.tick()
        except Exception:  # the daemon logs and counts a failed pass (5 in 5 min stop it); so do we
            self.failed_passes += 1
            log.exception("pool pass failed on %s", self.instance.instance_id)

    async def run(self) -> None:
        """The pool loop and the periodic EC2 sync, forever (cancel to stop)."""
        await asyncio.gather(self._pool_loop(), self._ec2_reconciler())

    async def _pool_loop(self) -> None:
        while True:
            await self.wakeup.wait()
            await self._pass()

    async def _ec2_reconciler(self) -> None:
        # ipamd.app.tasks.every with jitter 0.1; the first run one period after the start.
        period = self.settings.ec2_reconcile_period
        await asyncio.sleep(period)
        while True:
            assert self.reconciler is not None
            try:
                await self.reconciler.periodic_sync()
            except Exception:
                self.failed_passes += 1
            await asyncio.sleep(period + self._rng.uniform(-0.1 * period, 0.1 * period))

    # --- pods --------------------------------------------------------------------------------------

    def try_add(self, pod: str) -> str | None:
        """An ADD as the request handler makes it (assign; no plumbing, no checkpoint) and its poke of the
        pool loop. None when the pod got an address, else why not (the NoIpReason value)."""
        if not self.ready:
            return str(NoIpReason.STARTING)
        held = self.datastore.assign(AllocationKey(NETWORK, pod, "eth0"))
        if self.policy.poke:
            self.wakeup.poke()
        if held is not None:
            return None
        current = self.status.current
        return str(current.reason) if current is not None else str(NoIpReason.GROWING)

    def release(self, pod: str) -> bool:
        """A DEL as the handler makes it: the address goes into cooldown; the pool loop is poked."""
        held = self.datastore.release(AllocationKey(NETWORK, pod, "eth0"))
        if self.policy.poke:
            self.wakeup.poke()
        return held is not None

    def held(self) -> int:
        """Addresses the pool holds (assigned, cooling or free), in CIDRs that serve pods."""
        return sum(len(self.datastore.cidrs_of(e.eni_id)) for e in self.datastore.enis()
                   if not e.excluded) if not self.prefix_delegation else self.datastore.stats().total

    def assigned(self) -> int:
        return len(self.datastore.allocations())

    @property
    def met_subnet_full(self) -> bool:
        return self.calls.codes["InsufficientFreeAddressesInSubnet"] > 0
