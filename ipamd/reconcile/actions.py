"""The EC2 side of a pool Decision: fill an ENI, create one, hand CIDRs back, free an ENI.

Order of effects, chosen so that a crash between any two of them (see :mod:`ipamd.state.crashpoints`) leaves
nothing that the next start or the next sweep cannot repair, and never an address in the datastore that
EC2 has not given us:

* grow an ENI: AssignPrivateIpAddresses, then the datastore takes the addresses *from the EC2 answer*
  (never from IMDS: aws #3887). Crash in between: the addresses are on the ENI in EC2, and recovery,
  which reads EC2, finds them.
* new ENI: CreateNetworkInterface with its addresses (or prefixes) and tags in one call, in the first
  candidate subnet that has room; DescribeInstances for the lowest free device index; Attach;
  DeleteOnTermination; host setup; datastore. Crash after create: an available ENI of ours, deleted by
  the leaked-ENI sweep. Crash after attach: the next sync adopts our tagged ENI and sets DOT. A refused
  attach deletes the ENI at once.
* release: out of the datastore first (it refuses if a pod took an address meanwhile), then
  UnassignPrivateIpAddresses; if EC2 refuses, the CIDRs go back. Crash in between: EC2 still shows them,
  recovery puts them back as free.
* free an ENI: out of the datastore (refused unless empty), Detach, host teardown, Delete (not found =
  done; "in use" while detaching is retried briefly, then left to the leaked-ENI sweep).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from ipamd.reconcile.context import NodeContext, log
from ipamd.reconcile.node import EniTarget
from ipamd.reconcile.subnets import discovery_candidates
from ipamd.state.datastore import InUse
from vpccni.cloud.aws.tags import interface_tags
from vpccni.cloud.base import Attachment, NetworkInterface
from vpccni.errors import (
    CloudError,
    CloudInvalidRequest,
    CloudUnsupported,
    EniConfigMissing,
    EniLimitExceeded,
    NoCidrBlock,
    SubnetFull,
)

DELETE_RETRY_DELAYS_S = (0.5, 1.0, 2.0)


def _require_attachable(ctx: NodeContext, action: str) -> None:
    """The pool math never plans an interface change where the cloud cannot make one (Azure); if it ever
    did, that is a bug, refused here before any call rather than by the cloud."""
    if not ctx.provider.can_attach_interfaces:
        raise CloudUnsupported(action, "InterfacesFixed", "this cloud adds and removes no interface while "
                               "the instance runs; the pool asked for one (a bug)")


def _addresses(cidrs: tuple[str, ...] | list[str]) -> list[str]:
    return [c.rsplit("/", 1)[0] for c in cidrs if c.endswith("/32")]


def _prefixes(cidrs: tuple[str, ...] | list[str]) -> list[str]:
    return [c for c in cidrs if not c.endswith("/32")]


class EniActions:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        # An ENI this node attached whose next steps (DeleteOnTermination, host setup, datastore) did not
        # finish: EC2 shows it attached, the datastore does not have it. The reconciler resyncs to adopt
        # it rather than plan another ENI, whose attach would meet the ENI limit.
        self.unadopted: str | None = None

    # --- grow ------------------------------------------------------------------------------------

    async def assign(self, eni_id: str, count: int) -> list[str]:
        """Add ``count`` addresses (prefixes) to an attached ENI; returns the CIDRs added."""
        ctx = self.ctx
        ctx.crash.reached("grow.assign.before_ec2")
        if ctx.prefix_delegation:
            cidrs = await ctx.call(ctx.provider.assign_prefixes, eni_id, count)
        else:
            cidrs = [f"{a}/32" for a in await ctx.call(ctx.provider.assign_addresses, eni_id, count)]
        ctx.crash.reached("grow.assign.after_ec2")
        return ctx.datastore.add_cidrs(eni_id, cidrs)

    async def create_eni(self, count: int) -> NetworkInterface:
        """Create, attach and admit a new ENI holding ``count`` addresses (prefixes)."""
        ctx = self.ctx
        _require_attachable(ctx, "CreateNetworkInterface")
        subnets, groups = await self._placement()
        eni = await self._create_in_first_with_room(subnets, groups, count)
        ctx.crash.reached("grow.eni.after_create")
        instance = await ctx.call(ctx.provider.describe_instance, ctx.facts.instance_id)
        index = instance.lowest_free_device_index()
        try:
            if index is None:
                raise EniLimitExceeded("AttachNetworkInterface", "NoFreeDeviceIndex",
                                       f"every device index of {ctx.facts.instance_id} is taken")
            attachment_id = await ctx.call(ctx.provider.attach_interface, eni.interface_id,
                                           ctx.facts.instance_id, index)
        except CloudError:
            await self.delete_eni(eni.interface_id)  # never leave a fresh ENI detached
            raise
        ctx.crash.reached("grow.eni.after_attach")
        self.unadopted = eni.interface_id
        ctx.attachments[eni.interface_id] = attachment_id
        await ctx.call(ctx.provider.set_delete_on_termination, eni.interface_id, attachment_id, True)
        ctx.crash.reached("grow.eni.after_dot")
        # The create answer predates the attachment; host setup needs the device index (its route table).
        eni = replace(eni, status="in-use", attachment=Attachment(attachment_id, ctx.facts.instance_id, index,
                                                                  "attached", True))
        await ctx.prepare(eni)
        ctx.admit(eni, index)
        self.unadopted = None
        ctx.crash.reached("grow.eni.after_datastore")
        log.info("attached %s at device %d with %d %s", eni.interface_id, index, count,
                 "prefixes" if ctx.prefix_delegation else "addresses")
        return eni

    async def _placement(self) -> tuple[list[str], tuple[str, ...]]:
        """Candidate subnets (in order) and security groups for a new ENI."""
        ctx = self.ctx
        if ctx.settings.custom_network_cfg:
            target: EniTarget | None = await ctx.hooks.eni_target() if ctx.hooks.eni_target else None
            if target is None:
                raise EniConfigMissing("", "custom networking is on (AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG) but "
                                       "no ENIConfig names a subnet for this node's ENIs (no Kubernetes "
                                       "API: MY_NODE_NAME is unset)")
            return [target.subnet_id], target.security_group_ids
        groups = ctx.facts.security_group_ids
        if not ctx.settings.enable_subnet_discovery:
            return [ctx.facts.subnet_id], groups
        try:
            found = await ctx.call(ctx.provider.describe_subnets, vpc_id=ctx.facts.vpc_id,
                                   availability_zone=ctx.facts.availability_zone)
        except CloudError as exc:  # aws: DescribeSubnets failure falls back to the node's subnet
            log.warning("subnet discovery failed (%s); using the node's subnet", exc)
            return [ctx.facts.subnet_id], groups
        ctx.catalog.remember(found)
        candidates = discovery_candidates(found, node_subnet_id=ctx.facts.subnet_id, vpc_id=ctx.facts.vpc_id,
                                          availability_zone=ctx.facts.availability_zone,
                                          cluster_name=ctx.settings.cluster_name)
        return [s.subnet_id for s in candidates], groups

    async def _create_in_first_with_room(self, subnets: list[str], groups: tuple[str, ...],
                                         count: int) -> NetworkInterface:
        ctx = self.ctx
        if not subnets:
            raise SubnetFull("CreateNetworkInterface", "NoCandidateSubnet",
                             "no subnet qualifies: the node's subnet is tagged kubernetes.io/role/cni=0 "
                             "and no other subnet of its zone is tagged for this cluster")
        tags = interface_tags(instance_id=ctx.facts.instance_id, created_at=datetime.now(UTC),
                              cluster_name=ctx.settings.cluster_name or "",
                              additional=ctx.settings.additional_eni_tags)
        refused: list[CloudError] = []
        for subnet_id in subnets:
            try:
                return await ctx.call(
                    ctx.provider.create_interface, subnet_id=subnet_id, security_group_ids=list(groups),
                    description=ctx.facts.eni_description, tags=tags,
                    secondary_address_count=0 if ctx.prefix_delegation else count,
                    prefix_count=count if ctx.prefix_delegation else 0)
            except (SubnetFull, NoCidrBlock) as exc:
                refused.append(exc)
        last = refused[-1]
        raise type(last)(last.action, last.code, f"{last.message} (tried {', '.join(subnets)})")

    # --- shrink ----------------------------------------------------------------------------------

    async def release(self, eni_id: str, cidrs: tuple[str, ...]) -> bool:
        """Hand free CIDRs back to EC2; False when a pod took one meanwhile (nothing done)."""
        ctx = self.ctx
        try:
            ctx.datastore.remove_cidrs(eni_id, cidrs)
        except InUse:
            return False
        ctx.crash.reached("shrink.release.after_datastore")
        try:
            if _addresses(cidrs):
                await ctx.call(ctx.provider.unassign_addresses, eni_id, _addresses(cidrs))
            if _prefixes(cidrs):
                await ctx.call(ctx.provider.unassign_prefixes, eni_id, _prefixes(cidrs))
        except CloudError:
            ctx.datastore.add_cidrs(eni_id, cidrs)  # still ours as far as we know; a resync settles it
            raise
        ctx.crash.reached("shrink.release.after_ec2")
        return True

    async def free_eni(self, eni_id: str) -> bool:
        """Detach and delete an empty ENI; False when it holds something now (nothing done)."""
        ctx = self.ctx
        _require_attachable(ctx, "DetachNetworkInterface")
        try:
            ctx.datastore.remove_eni(eni_id)
        except InUse:
            return False
        ctx.crash.reached("shrink.eni.after_datastore")
        attachment_id = ctx.attachments.get(eni_id)
        if attachment_id is None or not await ctx.call(ctx.provider.detach_interface, attachment_id):
            # Not cached, or already gone: ask EC2 for the attachment of record.
            found = await ctx.call(ctx.provider.describe_interfaces, [eni_id])
            attachment = found[0].attachment if found else None
            if attachment is not None and attachment.instance_id == ctx.facts.instance_id:
                await ctx.call(ctx.provider.detach_interface, attachment.attachment_id)
        ctx.crash.reached("shrink.eni.after_detach")
        ctx.forget(eni_id)
        await ctx.hooks.eni_detached(eni_id)
        await self.delete_eni(eni_id)
        ctx.crash.reached("shrink.eni.after_delete")
        log.info("freed %s", eni_id)
        return True

    async def delete_eni(self, eni_id: str) -> None:
        """Delete a detached ENI; EC2 may still call it in use for a moment after a detach."""
        ctx = self.ctx
        for delay in (*DELETE_RETRY_DELAYS_S, None):
            try:
                await ctx.call(ctx.provider.delete_interface, eni_id)
                return
            except CloudInvalidRequest as exc:
                if delay is None:
                    log.warning("could not delete %s (%s); the leaked-ENI sweep will", eni_id, exc)
                    return
                await ctx.sleep(delay)
