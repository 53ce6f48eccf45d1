"""Keeping the datastore true to EC2, and using IMDS only as the cheap hint that it may not be.

EC2's DescribeNetworkInterfaces (one call, filtered by instance) is the truth for every ENI, address and
prefix of this node. A sync makes the datastore equal to it for the ENIs that are ours:

* an ENI of ours EC2 shows and the datastore lacks is *adopted*: missing tags added (aws TagENI),
  DeleteOnTermination set if a crash between attach and modify left it unset, host setup, datastore;
* a CIDR EC2 shows and the datastore lacks is added; one the datastore has and EC2 does not is removed,
  by force if a pod holds it (counted in ``awscni_force_removed_ips``; the checkpoint is rewritten);
* an ENI the datastore has and EC2 does not show attached here is removed (``awscni_force_removed_enis``).

IMDS is read every pool tick or so and compared with the datastore *as sets* (aws #3019 compared
lengths). A difference only triggers an EC2 sync; IMDS never adds or removes anything by itself, so an
IMDS that lags (an attach not visible yet) or is stale (a released address still listed) cannot make
ipamd hand out an address EC2 has not assigned or drop one it has (aws #1967, #3887). When EC2 agrees with
the datastore and IMDS still differs in the same way, that difference is remembered and not chased again
until IMDS changes, so a lagging IMDS costs one DescribeNetworkInterfaces per change, not one per tick.

At start, :meth:`Ec2Sync.startup_views` does the EC2 half before the datastore exists and returns what
:func:`ipamd.state.recovery.recover` rebuilds it from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ipamd.reconcile.context import NodeContext, log
from ipamd.reconcile.node import pod_cidrs, unmanaged_reason
from ipamd.state.datastore import InUse
from ipamd.state.recovery import DescribedEni
from vpccni.cloud.aws.imds import ImdsClient
from vpccni.cloud.aws.tags import TAG_CREATED_AT, interface_tags
from vpccni.cloud.base import NetworkInterface
from vpccni.errors import ImdsUnavailable

ImdsDiff = frozenset[tuple[str, str, str]]  # (eni id, cidr or "*", "ours-only" | "imds-only")


@dataclass(frozen=True)
class SyncReport:
    adopted: tuple[str, ...] = ()
    added_cidrs: int = 0
    removed_cidrs: int = 0
    forced_enis: int = 0
    forced_addresses: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.adopted or self.added_cidrs or self.removed_cidrs or self.forced_enis)


class Ec2Sync:
    def __init__(self, ctx: NodeContext, imds: ImdsClient | None = None) -> None:
        self.ctx = ctx
        self.imds = imds
        self._confirmed_imds_diff: ImdsDiff | None = None  # EC2 agreed with us despite this IMDS diff

    # --- EC2 -------------------------------------------------------------------------------------

    async def describe(self) -> list[NetworkInterface]:
        """Our ENIs attached to this node, per EC2; records the ones that are not ours."""
        ctx = self.ctx
        attached = await ctx.call(ctx.provider.describe_instance_interfaces, ctx.facts.instance_id)
        ctx.crash.reached("sync.after_describe")
        ours, unmanaged = [], {}
        for eni in attached:
            why = unmanaged_reason(eni, ctx.facts, ctx.settings)
            if why is None:
                ours.append(eni)
            else:
                unmanaged[eni.interface_id] = why
        for eni_id in unmanaged.keys() - ctx.unmanaged.keys():
            log.info("leaving %s alone: %s", eni_id, unmanaged[eni_id])
        ctx.unmanaged = unmanaged
        await ctx.know_subnets(ours)
        return ours

    async def startup_views(self) -> list[DescribedEni]:
        """EC2's view of our ENIs, fixed up (tags, DOT) and set up on the host, for recovery."""
        views = []
        for eni in await self.describe():
            await self._fix_up(eni)
            await self.ctx.prepare(eni)
            ctx = self.ctx
            views.append(DescribedEni(eni.interface_id, eni.device_index or 0,
                                 eni.interface_id == ctx.facts.primary_eni_id,
                                 ctx.catalog.cidr(eni.subnet_id), pod_cidrs(eni), ctx.is_excluded(eni)))
        return views

    async def sync(self, trigger: str) -> SyncReport:
        """Make the datastore equal to EC2 for our ENIs. Call with the reconciler's lock held."""
        ctx, ds = self.ctx, self.ctx.datastore
        ctx.metrics.in_progress("nodeIPPoolReconcile", 1)
        try:
            ours = {eni.interface_id: eni for eni in await self.describe()}
            adopted: list[str] = []
            added = removed = forced_enis = forced_addresses = 0
            for eni_id, eni in ours.items():
                if ds.eni(eni_id) is None:
                    await self._fix_up(eni)
                    await ctx.prepare(eni)
                    ctx.admit(eni, eni.device_index or 0)
                    adopted.append(eni_id)
                    continue
                want = set(pod_cidrs(eni))
                have = set(ds.cidrs_of(eni_id))
                added += len(ds.add_cidrs(eni_id, sorted(want - have)))
                for cidr in sorted(have - want):
                    removed += 1
                    forced_addresses += self._remove_cidr(eni_id, cidr)
                if eni.attachment is not None and not eni.attachment.delete_on_termination:
                    await self._fix_up(eni)
            for info in ds.enis():
                if info.eni_id not in ours:
                    dropped = ds.remove_eni(info.eni_id, force=True)
                    ctx.forget(info.eni_id)
                    forced_enis += 1
                    forced_addresses += len(dropped)
                    log.warning("%s is no longer attached to this node in EC2; removed "
                                "(%d pod addresses lost)", info.eni_id, len(dropped))
            report = SyncReport(tuple(adopted), added, removed, forced_enis, forced_addresses)
            if report.forced_enis or report.forced_addresses:
                ctx.metrics.force_removed(report.forced_enis, report.forced_addresses)
                await ctx.committer.commit()
            if report.changed:
                log.info("EC2 sync (%s): adopted %s, +%d/-%d CIDRs, %d ENIs and %d pod addresses "
                         "removed by force", trigger, list(report.adopted), added, removed, forced_enis,
                         forced_addresses)
            ctx.metrics.reconciled(trigger)
            return report
        finally:
            ctx.metrics.in_progress("nodeIPPoolReconcile", -1)

    def _remove_cidr(self, eni_id: str, cidr: str) -> int:
        """Remove a CIDR EC2 no longer shows; returns the pod assignments that went with it."""
        try:
            self.ctx.datastore.remove_cidrs(eni_id, [cidr])
            return 0
        except InUse:
            dropped = self.ctx.datastore.remove_cidrs(eni_id, [cidr], force=True)
            for held in dropped:
                log.error("EC2 no longer shows %s on %s: pod %s/%s loses it", held.address, eni_id,
                          held.pod.namespace, held.pod.name)
            return len(dropped)

    async def _fix_up(self, eni: NetworkInterface) -> None:
        """Tags aws-node puts on every ENI it manages, and DeleteOnTermination (not on the primary).
        Where interfaces cannot be created (Azure) there is neither: the NICs are the VM's own, follow its
        delete option, and tagging one would cost a whole-NIC write."""
        ctx = self.ctx
        if eni.interface_id == ctx.facts.primary_eni_id or not ctx.provider.can_attach_interfaces:
            return
        wanted = interface_tags(instance_id=ctx.facts.instance_id, created_at=datetime.fromtimestamp(0, UTC),
                                cluster_name=ctx.settings.cluster_name or "",
                                additional=ctx.settings.additional_eni_tags)
        wanted.pop(TAG_CREATED_AT)  # only set at creation (the sweep dates untagged ENIs itself)
        missing = {k: v for k, v in wanted.items() if eni.tag(k) != v}
        if missing:
            await ctx.call(ctx.provider.create_tags, [eni.interface_id], missing)
        attachment = eni.attachment
        if attachment is not None and not attachment.delete_on_termination:
            log.info("setting DeleteOnTermination on %s (left unset by an interrupted attach)",
                     eni.interface_id)
            await ctx.call(ctx.provider.set_delete_on_termination, eni.interface_id, attachment.attachment_id,
                           True)

    # --- IMDS ------------------------------------------------------------------------------------

    async def read_imds(self) -> dict[str, set[str]] | None:
        """Our ENIs and their CIDRs as IMDS shows them now; None when IMDS does not answer."""
        if self.imds is None:
            return None
        try:
            interfaces = await self.ctx.call(self.imds.interfaces)
        except ImdsUnavailable as exc:
            log.debug("IMDS check skipped: %s", exc)
            return None
        return {i.interface_id: {f"{a}/32" for a in i.local_ipv4s[1:]} | set(i.ipv4_prefixes)
                for i in interfaces if i.interface_id not in self.ctx.unmanaged}

    def needs_sync(self, imds_view: dict[str, set[str]]) -> ImdsDiff | None:
        """The difference between IMDS and the datastore if EC2 should be asked about it, else None."""
        diff = self.diff_against(imds_view)
        if not diff:
            self._confirmed_imds_diff = None
            return None
        return None if diff == self._confirmed_imds_diff else diff

    def settle(self, imds_view: dict[str, set[str]]) -> ImdsDiff:
        """After the EC2 sync a difference triggered: what still differs is IMDS lagging or stale."""
        diff = self.diff_against(imds_view)
        self._confirmed_imds_diff = diff or None
        return diff

    def diff_against(self, imds_view: dict[str, set[str]]) -> ImdsDiff:
        ds = self.ctx.datastore
        ours = {e.eni_id: set(ds.cidrs_of(e.eni_id)) for e in ds.enis()}
        diff: set[tuple[str, str, str]] = set()
        for eni_id in ours.keys() | imds_view.keys():
            if eni_id not in imds_view:
                diff.add((eni_id, "*", "ours-only"))
            elif eni_id not in ours:
                diff.add((eni_id, "*", "imds-only"))
            else:
                diff |= {(eni_id, c, "ours-only") for c in ours[eni_id] - imds_view[eni_id]}
                diff |= {(eni_id, c, "imds-only") for c in imds_view[eni_id] - ours[eni_id]}
        return frozenset(diff)
