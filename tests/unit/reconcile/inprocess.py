"""ipamd's reconciler, in process, over the in-memory fake cloud, in virtual time.

The parts are the daemon's own (``Reconciler``, ``Datastore``, ``GrowthStatus``, the pool decisions, the
retrying ``CallRunner`` with its API budget); only the cloud (:mod:`vpccni.cloud.fake`) and time differ.
Provider calls run inline on the event loop (``NodeContext(inline_calls=True)``), and every clock —
the reconciler's, the datastore's cooldown, the status's, the retry back-off and the API budget's sleeps
— reads one :class:`VirtualClock`, which only moves when the harness (or a back-off sleep) moves it. A
scenario of minutes runs in milliseconds and replays exactly.

:meth:`InProcessIpamd.run_for` is the daemon's pool loop: a pass every VPCCNI_POOL_LOOP_PERIOD and the
EC2 sync every VPCCNI_EC2_RECONCILE_PERIOD. Pods are datastore allocations; an "ADD" that finds no
address answers with ``GrowthStatus.why_no_ip()``, as the request handler does. Timers default to the
short ones the daemon-level tests in ``tests/cloud/ipamd`` run ipamd with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ipamd.pool import Decision
from ipamd.reconcile.context import NodeContext, ReconcilerHooks
from ipamd.reconcile.node import NodeFacts, pod_cidrs, prefix_delegation
from ipamd.reconcile.reconciler import Reconciler
from ipamd.reconcile.status import GrowthStatus
from ipamd.state.datastore import AllocationKey, Datastore
from ipamd.state.recovery import recover
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.fake import FakeCloud, FakeProvider, SubnetRef, map_error
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.config.settings import Settings
from vpccni.wire.protocol import NoIpReason

NETWORK, IFNAME = "vpccni", "eth0"
# The short timers and wide API budget the daemon-level tests (tests/cloud/ipamd) run ipamd with.
FAST_SETTINGS = {
    "VPCCNI_POOL_LOOP_PERIOD": "0.1",
    "VPCCNI_EC2_RECONCILE_PERIOD": "2",
    "VPCCNI_RELEASE_SPACING": "1",
    "VPCCNI_MIN_ENI_AGE": "1",
    "VPCCNI_SUBNET_FULL_BACKOFF": "2",
    "VPCCNI_SCALE_DOWN_WINDOW": "0",
    "IP_COOLDOWN_PERIOD": "1",
    "VPCCNI_API_MUTATING_BUCKET": "50",
    "VPCCNI_API_MUTATING_REFILL": "50",
    "VPCCNI_API_DESCRIBE_BUCKET": "100",
    "VPCCNI_API_DESCRIBE_REFILL": "100",
}


class VirtualClock:
    """Seconds since the scenario began (monotonic) and a wall clock that moves with it."""

    EPOCH = 1_700_000_000.0

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.EPOCH + self.now

    def advance(self, seconds: float) -> None:
        # Microseconds: thousands of 0.1 s passes would otherwise drift off the decimal grid.
        self.now = round(self.now + seconds, 6)

    def sleep(self, seconds: float) -> None:
        """What the retry back-off and the API budget wait with: time passes, nobody waits."""
        self.advance(max(seconds, 0.0))

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


class _NoCommit:
    async def commit(self) -> None:
        return None


class InProcessIpamd:
    """One node's reconciler over ``cloud`` (a new FakeCloud unless given), settings from ``env`` on top of
    the short test timers (like ``Settings.from_env``)."""

    def __init__(self, instance_type: str = "m5.large", env: Mapping[str, str] | None = None, *,
                 cloud: FakeCloud | None = None, subnet: SubnetRef | None = None,
                 security_groups: list[str] | None = None, retry: RetrySettings | None = None) -> None:
        self.clock = clock = VirtualClock()
        self.cloud = cloud or FakeCloud(seed=1)
        self.node = self.cloud.add_node(instance_type, subnet=subnet, security_groups=security_groups)
        self.settings = s = Settings.from_env({**FAST_SETTINGS, **(env or {})})
        self.throttled = 0  # throttled attempts the provider saw (the daemon's ec2_throttled_total)
        self.timeline: list[tuple[float, str, str | None]] = []  # (when, action, error code) per attempt
        self.refusals: list[tuple[str, str]] = []  # (permission, message) per UnauthorizedOperation
        budget = ApiBudget(BudgetSettings.from_sizes(
            mutating_capacity=s.api_mutating_bucket, mutating_rate=s.api_mutating_refill,
            describe_capacity=s.api_describe_bucket, describe_rate=s.api_describe_refill),
            clock=clock.monotonic, sleep=clock.sleep)
        runner = CallRunner(map_error=map_error, retry=retry, budget=budget, observer=self,
                            clock=clock.monotonic, sleep=clock.sleep)
        self.provider = FakeProvider(self.cloud, runner=runner)
        limits = self.cloud.limits_for(instance_type)
        assert limits is not None
        pd = prefix_delegation(s, limits)
        self.datastore = Datastore(prefix_delegation=pd, cooldown_s=s.ip_cooldown_period, clock=clock.wall)
        self.status = GrowthStatus(self.datastore, clock=clock.wall, monotonic=clock.monotonic)
        info = self.provider.describe_instance(self.node.instance_id)
        facts = NodeFacts(info.instance_id, info.instance_type, info.availability_zone, self.cloud.region,
                          info.vpc_id, info.subnet_id, info.primary_interface_id, self.node.primary_ip,
                          info.security_group_ids)
        hooks = ReconcilerHooks(on_unauthorized=lambda permission, message: self.refusals.append(
            (permission, message)))
        self.ctx = NodeContext(s, facts, limits, self.provider, self.datastore, _NoCommit(), pd, hooks=hooks,
                               inline_calls=True, sleep=clock.async_sleep)
        self.reconciler = Reconciler(self.ctx, self.status, monotonic=clock.monotonic, clock=clock.wall)
        self._sync_due = 0.0

    # --- the cloud observer (what ipamd's metrics feed does with a throttle) ------------------------------

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        self.timeline.append((self.clock.now, action, error_code))
        if throttled:
            self.throttled += 1
            self.status.note_throttle()

    # --- the daemon's life ----------------------------------------------------------------------------------

    async def start(self) -> Decision:
        """Recovery from EC2 (no checkpoint), then the pre-scaling pass, as the daemon starts."""
        recover(self.datastore, None, await self.reconciler.startup_views())
        self._sync_due = self.clock.now + self.settings.ec2_reconcile_period
        return await self.reconciler.tick()

    async def run_for(self, seconds: float) -> list[Decision]:
        """The pool loop for ``seconds`` of virtual time; the decisions of its passes."""
        period = self.settings.pool_loop_period
        decisions = []
        for _ in range(round(seconds / period)):
            self.clock.advance(period)
            decisions.append(await self.reconciler.tick())
            if self.clock.now >= self._sync_due:
                self._sync_due = self.clock.now + self.settings.ec2_reconcile_period
                await self.reconciler.periodic_sync()
        return decisions

    async def settle(self, max_s: float = 600.0) -> float:
        """Run until a whole quiet window (every timer run out) passes without a mutating call; the
        virtual seconds that took. Fails if the pool keeps changing for ``max_s``."""
        s = self.settings
        quiet_window = (s.ip_cooldown_period + s.release_spacing + s.min_eni_age + s.scale_down_window
                        + s.subnet_full_backoff + 2 * s.pool_loop_period)
        began, quiet_since, seen = self.clock.now, self.clock.now, self.cloud.mutation_count
        while self.clock.now - began < max_s:
            await self.run_for(s.pool_loop_period)
            if self.cloud.mutation_count != seen:
                seen, quiet_since = self.cloud.mutation_count, self.clock.now
            elif self.clock.now - quiet_since >= quiet_window:
                return self.clock.now - began
        raise AssertionError(f"the pool kept changing for {max_s}s: {self.reconciler.last_decision}")

    # --- pods -----------------------------------------------------------------------------------------------

    def add(self, pod: str) -> str | tuple[NoIpReason, str]:
        """An ADD: the pod's address, or why there is none (the ADD's error)."""
        held = self.datastore.assign(AllocationKey(NETWORK, pod, IFNAME))
        return held.address if held is not None else self.status.why_no_ip()

    def refused(self, pod: str) -> tuple[NoIpReason, str]:
        """An ADD that must find no address: why (the reason and the message the plugin would get)."""
        answer = self.add(pod)
        assert not isinstance(answer, str), f"ADD {pod} got {answer}"
        return answer

    def add_ok(self, pod: str) -> str:
        answer = self.add(pod)
        assert isinstance(answer, str), f"ADD {pod} refused: {answer}"
        return answer

    async def place(self, pods: Iterable[str], *, max_wait_s: float = 60.0,
                    also_wait_for: frozenset[NoIpReason] = frozenset()) -> None:
        """ADD each pod, running the pool loop while the answer is "growing" (or one of ``also_wait_for``),
        as kubelet retries; any other refusal fails the test."""
        waiting = {NoIpReason.GROWING, *also_wait_for}
        for pod in pods:
            began = self.clock.now
            while not isinstance(answer := self.add(pod), str):
                if answer[0] not in waiting or self.clock.now - began > max_wait_s:
                    raise AssertionError(f"ADD {pod} refused after {self.clock.now - began:.1f}s: {answer}")
                await self.run_for(self.settings.pool_loop_period)

    def delete(self, pod: str) -> None:
        assert self.datastore.release(AllocationKey(NETWORK, pod, IFNAME)) is not None, pod

    # --- what EC2 and the datastore hold --------------------------------------------------------------------

    def ec2_cidrs(self) -> dict[str, set[str]]:
        return {e.interface_id: set(pod_cidrs(e)) for e in self.cloud.interfaces(self.node.instance_id)}

    def datastore_cidrs(self) -> dict[str, set[str]]:
        return {e.eni_id: set(self.datastore.cidrs_of(e.eni_id)) for e in self.datastore.enis()}

    def shape(self) -> list[int]:
        """Pod CIDRs per attached ENI, by device index, as EC2 holds them."""
        return [len(pod_cidrs(e)) for e in self.cloud.interfaces(self.node.instance_id)]

    def mutations(self) -> dict[str, Any]:
        return dict(self.cloud.mutations())

    def after(self, times: list[float], since: float) -> list[float]:
        """``times`` relative to ``since``, to the microsecond."""
        return [round(t - since, 6) for t in times]

    def attempts(self, action: str) -> list[float]:
        """When each request of ``action`` was sent (virtual seconds), retries included."""
        return [when for when, name, _ in self.timeline if name == action]
