"""The reconciler: applies the pool's Decisions through the cloud and keeps the datastore true to EC2.

One pool pass (:meth:`Reconciler.tick`): build the pool state from the datastore, ask the pure
:func:`ipamd.pool.decision.decide`, then grow (fill existing ENIs, one Assign each; create one ENI with its
addresses) and shrink (hand free CIDRs back, free one idle ENI) through :mod:`ipamd.reconcile.actions`.
Gates before any EC2 mutation: DISABLE_NETWORK_RESOURCE_PROVISIONING (the pool is what is attached), a
cordoned node with AWS_MANAGE_ENIS_NON_SCHEDULABLE=false, and the growth back-offs: VPCCNI_SUBNET_FULL_BACKOFF
after InsufficientFreeAddressesInSubnet / InsufficientCidrBlocks, and after UnauthorizedOperation one that
doubles from 2 s to 5 min while EC2 keeps refusing, for growth and for shrinking apart (aws-node retries a
denied call every pass, so a fleet missing one permission keeps spending the account's request budget on
refusals).

No cloud error stops ipamd. Each is turned into the reason the pool cannot grow
(:mod:`ipamd.reconcile.status`, what an ADD that finds no address answers) and, where our picture of
EC2 may be wrong (ENI or address limit, an ambiguous failure), into a resync from EC2 before the next
pass. Throttling needs nothing here: the API budget already waits and backs off.

EC2 syncs (:mod:`ipamd.reconcile.sync`) run at start, on request, when IMDS disagrees with the datastore,
and every VPCCNI_EC2_RECONCILE_PERIOD, skipped when the pool itself acted within that period (as aws).
One asyncio lock serialises every pass and sync, so no sync describes EC2 in the middle of a grow; ADD and
DEL do not take it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import groupby

from ipamd.pool import (
    Decision,
    NodeCapacity,
    PeakWindow,
    PoolState,
    PoolStats,
    batching,
    decide,
    pool_stats,
    single_step,
)
from ipamd.reconcile.actions import EniActions
from ipamd.reconcile.context import NodeContext, log
from ipamd.reconcile.node import node_capacity, pool_targets, pool_timers
from ipamd.reconcile.status import GrowthStatus
from ipamd.reconcile.sync import Ec2Sync
from ipamd.state.recovery import DescribedEni
from vpccni.cloud.aws.imds import ImdsClient
from vpccni.errors import (
    AddressLimitExceeded,
    CloudError,
    CloudThrottled,
    EniConfigMissing,
    EniLimitExceeded,
    KubernetesError,
    NoCidrBlock,
    PlumbingError,
    SubnetFull,
    Unauthorized,
)
from vpccni.wire.protocol import NoIpReason

UNAUTHORIZED_BACKOFF_FIRST_S = 2.0
UNAUTHORIZED_BACKOFF_MAX_S = 300.0
_SUBNET_FULL_HINT = "VPCCNI_SUBNET_FULL_BACKOFF"


# How each refusal of a growth call is reported: (error type, reason, sentence, resync from the cloud after).
# A limit EC2 enforced means our view of the node may be stale, so the next pass asks EC2 again; so does any
# other error, whose outcome may be ambiguous.
GROWTH_REFUSALS: tuple[tuple[type[CloudError], NoIpReason, str, bool], ...] = (
    (SubnetFull, NoIpReason.SUBNET_FULL, "the subnet has no free address ({detail})", False),
    (NoCidrBlock, NoIpReason.NO_CIDR_BLOCK, "the subnet has no free aligned /28 ({detail})", False),
    (EniLimitExceeded, NoIpReason.ENI_LIMIT, "{api} refused more: {detail}; resyncing from {api}", True),
    (AddressLimitExceeded, NoIpReason.ENI_LIMIT, "{api} refused more: {detail}; resyncing from {api}", True),
    (CloudThrottled, NoIpReason.THROTTLED,
     "{api} throttled the pool's calls ({detail}); retrying within the API budget", False),
)
_OTHER_REFUSAL = (NoIpReason.CLOUD_ERROR, "{detail}; resyncing from {api}", True)


def unauthorized_backoff(refusals: int) -> float:
    """Seconds without another attempt after the ``refusals``-th UnauthorizedOperation in a row."""
    return min(UNAUTHORIZED_BACKOFF_MAX_S, UNAUTHORIZED_BACKOFF_FIRST_S * 2.0 ** min(refusals - 1, 30))


@dataclass
class RefusalBackoff:
    """UnauthorizedOperation refusals in a row of one kind of pool action (growing or shrinking), and the
    monotonic time before which that action is not tried again."""

    refusals: int = 0
    until: float = -math.inf

    def refused(self, now: float) -> float:
        self.refusals += 1
        self.until = now + unauthorized_backoff(self.refusals)
        return self.until

    def succeeded(self) -> None:
        self.refusals = 0


class Reconciler:
    def __init__(self, ctx: NodeContext, status: GrowthStatus, *, imds: ImdsClient | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 clock: Callable[[], float] = time.time, subnet_full_per_subnet: bool = True) -> None:
        self.ctx = ctx
        self.status = status
        self.actions = EniActions(ctx)
        self.sync = Ec2Sync(ctx, imds)
        self.lock = asyncio.Lock()
        self._monotonic = monotonic
        self._clock = clock
        settings = ctx.settings
        self.targets = pool_targets(settings, ctx.limits)
        self.timers = pool_timers(settings)
        self._node_capacity_pods: int | None = None
        self.capacity = self._capacity()
        self.peak = PeakWindow(settings.effective_scale_down_window)
        self.last_decision: Decision | None = None
        self.last_decision_at: float | None = None  # wall-clock
        self.last_decision_basis: PoolStats | None = None  # the counts the decision was made on
        self.last_pool_action = -math.inf  # monotonic: the last pass that called EC2
        self._last_decrease = -math.inf  # monotonic
        self._backoff_until = -math.inf  # monotonic: no growth before (subnet full / no /28)
        self._backoff_reason = NoIpReason.SUBNET_FULL
        self._backoff_hint = _SUBNET_FULL_HINT  # what sets the wait, for the status message
        # A subnet EC2 called full stops growth on the ENIs in it only, for VPCCNI_SUBNET_FULL_BACKOFF:
        # the pool grows through a new ENI in another candidate subnet meanwhile. False: every growth
        # waits out the back-off, as aws-node does (the simulator's aws-like policy).
        self._per_subnet = subnet_full_per_subnet
        self._full_subnets: dict[str, float] = {}  # subnet id -> monotonic time its mark expires
        self._single_steps_until = -math.inf  # monotonic: grow one address per write (the subnet was full)
        self._grow_refusals = RefusalBackoff()
        self._shrink_refusals = RefusalBackoff()  # releases and ENI frees
        self.resync_requested = False
        self.unauthorized: dict[str, str] = {}  # action -> the last refusal's message
        self.ticks = 0
        self.syncs = 0

    @property
    def _api(self) -> str:
        """Who answered, in the reasons an ADD gets: EC2, or Azure Resource Manager."""
        return "ARM" if self.ctx.settings.cloud == "azure" else "EC2"

    # --- capacity --------------------------------------------------------------------------------

    def _capacity(self) -> NodeCapacity:
        return node_capacity(self.ctx.settings, self.ctx.limits, unmanaged_enis=len(self.ctx.unmanaged),
                             node_capacity_pods=self._node_capacity_pods)

    def set_node_capacity_pods(self, pods: int | None) -> None:
        """The Node's ``status.capacity.pods`` (the Kubernetes side calls this; VPCCNI_MAX_PODS wins)."""
        self._node_capacity_pods = pods
        self.capacity = self._capacity()

    # --- start -----------------------------------------------------------------------------------

    async def startup_views(self) -> list[DescribedEni]:
        """EC2's view of our ENIs for recovery (the datastore must still be empty)."""
        async with self.lock:
            views = await self.sync.startup_views()
            self.capacity = self._capacity()
            self.syncs += 1
            return views

    # --- one pool pass ---------------------------------------------------------------------------

    async def tick(self) -> Decision:
        async with self.lock:
            if self.resync_requested:
                await self._resync("resync")
            now = self._monotonic()
            state = self._mark_full_subnets(
                self.ctx.datastore.pool_state(seconds_since_last_decrease=now - self._last_decrease), now)
            stats = pool_stats(state, self.capacity.primary_serves_pods)
            state = replace(state, peak_in_use=self.peak.observe(now, stats.in_use))
            decision = decide(state, self.targets, self.capacity, self.timers)
            if now < self._single_steps_until:
                decision = single_step(decision)
            self.last_decision, self.last_decision_at = decision, self._clock()
            self.last_decision_basis = stats
            self.ticks += 1
            await self._grow(decision)
            await self._shrink(decision)
            self.status.started = True
            return decision

    def _gate(self) -> tuple[NoIpReason, str] | None:
        """Why no EC2 mutation may happen now, if one of the gates is closed."""
        settings = self.ctx.settings
        if settings.disable_network_resource_provisioning:
            return NoIpReason.PROVISIONING_DISABLED, (
                "DISABLE_NETWORK_RESOURCE_PROVISIONING=true: ipamd adds no ENI or address; the pool is what "
                f"is attached ({self.ctx.datastore.stats().total} addresses)")
        if not settings.manage_enis_non_schedulable and self.ctx.hooks.node_unschedulable():
            return NoIpReason.UNSCHEDULABLE, (
                "the node is cordoned (unschedulable) and AWS_MANAGE_ENIS_NON_SCHEDULABLE=false: no ENI or "
                "address is added or removed until it is uncordoned")
        return None

    async def _grow(self, d: Decision) -> None:
        if d.short <= 0:
            self.status.clear()
            return
        gate = self._gate()
        if gate is not None:
            self.status.block(*gate)
            return
        wait = self._backoff_until - self._monotonic()
        if wait > 0 and (d.assign or d.new_eni):
            current = self.status.current
            cause = current.cause if current is not None else "the subnet has no free address"
            self.status.block(self._backoff_reason, cause,
                              f"next growth attempt in {wait:.0f}s ({self._backoff_hint})")
            return
        if d.assign or d.new_eni:
            self.status.growing = True
            self.ctx.metrics.in_progress("increaseDatastorePool", 1)
            refused = False
            try:
                for eni_id, count in d.assign:
                    try:
                        await self.actions.assign(eni_id, count)
                    except (SubnetFull, NoCidrBlock) as exc:
                        if not self._marks_subnet(exc) or not self._subnet_refused(eni_id, exc):
                            raise
                        refused = True
                if d.new_eni:
                    await self.actions.create_eni(d.new_eni)
                self._grow_refusals.succeeded()
            except CloudError as exc:
                self._grow_failed(exc)
                return
            except EniConfigMissing as exc:
                self.status.block(NoIpReason.ENI_CONFIG_MISSING, str(exc))
                return
            except KubernetesError as exc:  # the ENIConfig could not be read: try again next pass
                self.ctx.metrics.error("increaseDatastorePool")
                self.status.block(NoIpReason.ENI_CONFIG_MISSING,
                                  f"the node's ENIConfig could not be read: {exc}")
                return
            except PlumbingError as exc:  # attached, but host setup failed: the next sync adopts it again
                self.ctx.metrics.error("increaseDatastorePool")
                log.warning("a new ENI's host setup failed: %s; it is adopted again after a resync", exc)
                self.resync_requested = True
                self.status.block(NoIpReason.GROWING,
                                  f"a new ENI is attached but its host setup failed ({exc}); retrying")
                return
            finally:
                self.status.growing = False
                self.ctx.metrics.in_progress("increaseDatastorePool", -1)
                self.last_pool_action = self._monotonic()
            if refused and not d.new_eni:
                return  # the refusal is the answer; the next pass grows through a new ENI
        if d.blocked and self._full_subnets:
            full = ", ".join(sorted(self._full_subnets))
            self.status.block(NoIpReason.SUBNET_FULL, f"the ENIs with room are in subnets EC2 called full "
                              f"({full}) and no new ENI can be added ({d.blocked})",
                              f"they are tried again within {self.ctx.settings.subnet_full_backoff:g}s "
                              f"({_SUBNET_FULL_HINT})")
        elif d.blocked:
            self.status.block(NoIpReason(d.blocked), self._blocked_message(d))
        else:
            self.status.clear()

    def _mark_full_subnets(self, state: PoolState, now: float) -> PoolState:
        """The pool state with ENIs in a subnet EC2 called full marked so (growth skips them)."""
        self._full_subnets = {subnet: until for subnet, until in self._full_subnets.items() if until > now}
        if not self._full_subnets:
            return state
        subnets = self.ctx.eni_subnets
        return replace(state, enis=tuple(
            replace(e, subnet_full=True) if subnets.get(e.eni_id) in self._full_subnets else e
            for e in state.enis))

    def _marks_subnet(self, exc: SubnetFull | NoCidrBlock) -> bool:
        """Whether a refusal for lack of room marks the ENI's subnet full and growth goes elsewhere. Not
        where no ENI can be added (fixed NICs: there is no elsewhere), nor on a batch's first refusal (one
        address per write is tried first, see :meth:`_grow_failed`)."""
        if not self._per_subnet or self.capacity.interfaces_fixed:
            return False
        first_batch = batching(self.targets) > 1 and self._monotonic() >= self._single_steps_until
        return not (isinstance(exc, SubnetFull) and first_batch)

    def _subnet_refused(self, eni_id: str, exc: SubnetFull | NoCidrBlock) -> bool:
        """EC2 refused addresses on ``eni_id`` for lack of room in its subnet: mark the subnet full (the
        next passes grow elsewhere). False when the ENI's subnet is not known (the caller re-raises)."""
        subnet = self.ctx.eni_subnets.get(eni_id)
        if subnet is None:
            return False
        backoff = self.ctx.settings.subnet_full_backoff
        self._full_subnets[subnet] = self._monotonic() + backoff
        self.ctx.metrics.error("increaseDatastorePool")
        reason = NoIpReason.SUBNET_FULL if isinstance(exc, SubnetFull) else NoIpReason.NO_CIDR_BLOCK
        self.status.block(reason, f"subnet {subnet} has no room for {eni_id} (EC2 {exc.code}); growing "
                          "through a new ENI in another subnet", f"{subnet} is tried again in {backoff:g}s "
                          f"({_SUBNET_FULL_HINT})")
        log.warning("EC2 %s on %s: subnet %s marked full for %gs", exc.code, eni_id, subnet, backoff)
        return True

    def _blocked_message(self, d: Decision) -> str:
        cap, stats = self.capacity, self.ctx.datastore.stats()
        if d.blocked == NoIpReason.MAX_PODS:
            return (f"the pool holds {stats.total} addresses and max pods is {cap.max_pods}; "
                    f"{d.short} more wanted by the warm targets")
        if cap.interfaces_fixed:
            nics = len(self.ctx.datastore.enis())
            return (f"every NIC is full: the pool holds {stats.total} addresses on the {nics} NIC(s) "
                    f"{self.ctx.facts.instance_type} booted with, and a running VM gains no NIC; {d.short} "
                    "more address(es) wanted")
        cap_note = f", MAX_ENI={self.ctx.settings.max_eni}" if self.ctx.settings.max_eni else ""
        unmanaged = f", {len(self.ctx.unmanaged)} not managed by ipamd" if self.ctx.unmanaged else ""
        return (f"every ENI is full and the node has {len(self.ctx.datastore.enis())} of {cap.max_enis} ENIs "
                f"({self.ctx.facts.instance_type}{cap_note}{unmanaged}); {d.short} more address(es) wanted")

    def _grow_failed(self, exc: CloudError) -> None:
        self.ctx.metrics.error("increaseDatastorePool")
        log.warning("growing the pool failed: %s", exc)
        if isinstance(exc, Unauthorized):
            self._backoff_until = self._grow_refusals.refused(self._monotonic())
            self._backoff_reason = NoIpReason.UNAUTHORIZED
            self._backoff_hint = (f"doubling while {self._api} refuses, at most "
                                  f"{UNAUTHORIZED_BACKOFF_MAX_S:g}s")
            self._unauthorized(exc)
            return
        detail = f"{self._api} {exc.code} on {exc.action}" + (f": {exc.message}" if exc.message else "")
        backoff = self.ctx.settings.subnet_full_backoff
        if isinstance(exc, SubnetFull) and batching(self.targets) > 1 and self._monotonic() >= \
                self._single_steps_until:
            # Azure CNS drops its batch to 1 on an exhausted subnet: one address may fit where a batch did
            # not, so the next passes grow one address per write, with no back-off before the first.
            self._single_steps_until = self._monotonic() + backoff
            self.status.block(NoIpReason.SUBNET_FULL, f"the subnet has no room for a batch ({detail})",
                              f"growing one address per write for {backoff:g}s (VPCCNI_SUBNET_FULL_BACKOFF)")
            return
        reason, says, resync = next(((r, s, again) for kind, r, s, again in GROWTH_REFUSALS
                                     if isinstance(exc, kind)), _OTHER_REFUSAL)
        # An ENI attached before the refusal (e.g. DeleteOnTermination throttled) is adopted from EC2.
        unadopted, self.actions.unadopted = self.actions.unadopted, None
        self.resync_requested = self.resync_requested or resync or unadopted is not None
        retry = ""
        if reason in (NoIpReason.SUBNET_FULL, NoIpReason.NO_CIDR_BLOCK):
            self._backoff_until = self._monotonic() + backoff
            if batching(self.targets) > 1:  # even one address did not fit: stay at one after the wait
                self._single_steps_until = self._backoff_until + backoff
            self._backoff_hint = _SUBNET_FULL_HINT
            self._backoff_reason = reason
            retry = f"next growth attempt in {backoff:g}s (VPCCNI_SUBNET_FULL_BACKOFF)"
        self.status.block(reason, says.format(detail=detail, api=self._api), retry)

    def _unauthorized(self, exc: Unauthorized) -> None:
        self.unauthorized[exc.action] = exc.message or exc.code
        # The hook (a MissingIAMPermissions Event) names the permission EC2 said is missing, which is not
        # always the action called: a tagged CreateNetworkInterface needs ec2:CreateTags too.
        self.ctx.hooks.on_unauthorized(exc.permission, exc.message or exc.code)
        what = "role" if self.ctx.settings.cloud == "azure" else "IAM"
        self.status.block(NoIpReason.UNAUTHORIZED, f"{self._api} refused {exc.action}: missing {what} "
                          f"permission ({exc.code}{': ' + exc.message if exc.message else ''})")

    async def _shrink(self, d: Decision) -> None:
        stale = self.ctx.datastore.stale_mode_cidrs()
        if not (d.release or d.free_eni or stale) or self._gate() is not None:
            return
        if self._monotonic() < self._shrink_refusals.until:  # EC2 refused the last one as unauthorized
            return
        self.ctx.metrics.in_progress("decreaseDatastorePool", 1)
        try:
            released = False
            regrouped = [(eni, tuple(c for _, c in items))
                         for eni, items in groupby(sorted(stale), lambda pair: pair[0])]
            for eni_id, cidrs in (*d.release, *regrouped):
                released = await self.actions.release(eni_id, cidrs) or released
            if released:
                self._last_decrease = self._monotonic()
            if d.free_eni:
                await self.actions.free_eni(d.free_eni)
            self._shrink_refusals.succeeded()
        except CloudError as exc:
            self.ctx.metrics.error("decreaseDatastorePool")
            log.warning("shrinking the pool failed: %s; resyncing from EC2", exc)
            self.resync_requested = True
            if isinstance(exc, Unauthorized):
                self._shrink_refusals.refused(self._monotonic())
                self._unauthorized(exc)
        finally:
            self.ctx.metrics.in_progress("decreaseDatastorePool", -1)
            self.last_pool_action = self._monotonic()

    # --- syncs -----------------------------------------------------------------------------------

    async def _resync(self, trigger: str) -> bool:
        """One EC2 sync (lock held). A failure is logged and retried before the next pass."""
        self.resync_requested = False
        try:
            await self.sync.sync(trigger)
        except (CloudError, PlumbingError) as exc:  # plumbing: an adopted ENI's host setup, retried
            self.ctx.metrics.error("nodeIPPoolReconcile")
            log.warning("EC2 sync (%s) failed: %s", trigger, exc)
            self.resync_requested = True
            if isinstance(exc, Unauthorized):
                self._unauthorized(exc)
            return False
        self.syncs += 1
        self.capacity = self._capacity()
        return True

    async def periodic_sync(self) -> bool:
        """The VPCCNI_EC2_RECONCILE_PERIOD sync; skipped if the pool itself acted within the period."""
        if self._monotonic() - self.last_pool_action < self.ctx.settings.ec2_reconcile_period:
            return False
        async with self.lock:
            return await self._resync("periodic")

    async def check_imds(self) -> bool:
        """Compare IMDS with the datastore; on a new difference, sync from EC2. True if EC2 was asked."""
        view = await self.sync.read_imds()
        if view is None:
            return False
        async with self.lock:
            diff = self.sync.needs_sync(view)
            if diff is None:
                return False
            log.info("IMDS differs from the datastore (%s); asking EC2", ", ".join(
                f"{e} {c} {w}" for e, c, w in sorted(diff)[:5]) + (" ..." if len(diff) > 5 else ""))
            if await self._resync("imds"):
                left = self.sync.settle(view)
                if left:
                    log.info("EC2 agrees with the datastore; IMDS lags or is stale on %d item(s)", len(left))
            return True
