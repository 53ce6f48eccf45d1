"""What every part of the reconciler shares: the node, the cloud, the datastore, the hooks, the caches.

The reconciler is split by responsibility (``reconciler`` decides when and reports why, ``reconciler_actions``
grows and shrinks through EC2, ``reconciler_sync`` keeps the datastore true to EC2 and compares it with
IMDS); :class:`NodeContext` is the one object they all hold. Everything here runs on the event loop,
except the cloud calls, which :meth:`NodeContext.call` runs in worker threads (boto3 blocks).

Hooks are the seams for code that is not the reconciler's:

* ``eni_target``: custom networking's ENIConfig lookup (the Kubernetes side); None = no ENIConfig.
* ``node_unschedulable``: the node is cordoned (AWS_MANAGE_ENIS_NON_SCHEDULABLE=false stops growing and
  shrinking then).
* ``on_unauthorized``: the cloud refused an action for lack of permission, EC2's IAM or an Azure role (the
  Kubernetes side turns it into a ``MissingIAMPermissions`` event, as aws-node does); the argument is the
  permission the cloud named (``ec2:CreateTags``, ``Microsoft.Network/networkInterfaces/write``).
* ``eni_attached`` / ``eni_detached``: host-side ENI setup (link, address, route table, rule) before the
  ENI's addresses serve pods, and its teardown (vpccni.net.host, wired through the dataplane).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from ipamd.reconcile.node import EniTarget, NodeFacts, pod_cidrs
from ipamd.reconcile.subnets import SubnetCatalog, excluded
from ipamd.state.checkpoint import Committer
from ipamd.state.crashpoints import NO_CRASH, CrashPoints
from ipamd.state.datastore import Datastore
from vpccni.cloud.base import CloudProvider, NetworkInterface
from vpccni.config.limits import InstanceLimits
from vpccni.config.settings import Settings

log = logging.getLogger("ipamd.reconcile.reconciler")

T = TypeVar("T")


async def _no_eni_setup(eni: NetworkInterface, subnet_cidr: str) -> None:
    return None


async def _no_eni_teardown(eni_id: str) -> None:
    return None


def _log_unauthorized(action: str, message: str) -> None:
    log.error("the cloud refused %s: missing permission (%s)", action, message)


@dataclass
class ReconcilerHooks:
    eni_target: Callable[[], Awaitable[EniTarget | None]] | None = None
    node_unschedulable: Callable[[], bool] = lambda: False
    on_unauthorized: Callable[[str, str], None] = _log_unauthorized
    eni_attached: Callable[[NetworkInterface, str], Awaitable[None]] = _no_eni_setup
    eni_detached: Callable[[str], Awaitable[None]] = _no_eni_teardown


class ReconcilerMetrics(Protocol):
    """What the reconciler reports to metrics (aws-node's names; see ipamd.observe.feed)."""

    def reconciled(self, fn: str) -> None: ...
    def force_removed(self, enis: int, addresses: int) -> None: ...
    def error(self, fn: str) -> None: ...
    def in_progress(self, fn: str, delta: int) -> None: ...


class NullReconcilerMetrics:
    def reconciled(self, fn: str) -> None:
        return None

    def force_removed(self, enis: int, addresses: int) -> None:
        return None

    def error(self, fn: str) -> None:
        return None

    def in_progress(self, fn: str, delta: int) -> None:
        return None


@dataclass
class NodeContext:
    settings: Settings
    facts: NodeFacts
    limits: InstanceLimits
    provider: CloudProvider
    datastore: Datastore
    committer: Committer
    prefix_delegation: bool
    hooks: ReconcilerHooks = field(default_factory=ReconcilerHooks)
    metrics: ReconcilerMetrics = field(default_factory=NullReconcilerMetrics)
    crash: CrashPoints = NO_CRASH
    catalog: SubnetCatalog = field(default_factory=SubnetCatalog)
    # Cloud calls run in worker threads because boto3 blocks. A provider that never blocks (the in-memory
    # fake) may run on the loop itself: tests then drive the reconciler in virtual time, without threads,
    # with ``sleep`` (the waits between delete retries) advancing a virtual clock.
    inline_calls: bool = False
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    # caches of what EC2 last said, by ENI id
    attachments: dict[str, str] = field(default_factory=dict)  # attachment id
    eni_subnets: dict[str, str] = field(default_factory=dict)  # subnet id
    unmanaged: dict[str, str] = field(default_factory=dict)  # why not ours

    async def call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """Run a blocking cloud call in a worker thread (on the loop itself with ``inline_calls``)."""
        if self.inline_calls:
            return fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    def is_excluded(self, eni: NetworkInterface) -> bool:
        """Serves no pods: the primary under custom networking, or an ENI in a subnet tagged cni=0."""
        if eni.interface_id == self.facts.primary_eni_id and self.settings.custom_network_cfg:
            return True
        subnet = self.catalog.get(eni.subnet_id)
        return subnet is not None and self.settings.enable_subnet_discovery and excluded(subnet)

    async def know_subnets(self, enis: list[NetworkInterface]) -> None:
        """Make sure the catalog has the subnet of every ENI (one DescribeSubnets for the unknown ones)."""
        missing = self.catalog.missing(e.subnet_id for e in enis)
        if missing:
            self.catalog.remember(await self.call(self.provider.describe_subnets, subnet_ids=missing))

    async def prepare(self, eni: NetworkInterface) -> None:
        """Host-side setup of an attached ENI before its addresses may serve pods; caches its facts."""
        if eni.attachment is None:  # its device index is its route table: setting it up blind would be wrong
            raise ValueError(f"{eni.interface_id} is not attached: no host setup without a device index")
        self.attachments[eni.interface_id] = eni.attachment.attachment_id
        self.eni_subnets[eni.interface_id] = eni.subnet_id
        if eni.interface_id != self.facts.primary_eni_id:
            await self.hooks.eni_attached(eni, self.catalog.cidr(eni.subnet_id))

    def admit(self, eni: NetworkInterface, device_index: int) -> None:
        """Put a prepared ENI and its CIDRs, as EC2 answered them, into the datastore."""
        self.datastore.add_eni(eni.interface_id, device_index, eni.interface_id == self.facts.primary_eni_id,
                               self.catalog.cidr(eni.subnet_id), excluded=self.is_excluded(eni))
        self.datastore.add_cidrs(eni.interface_id, pod_cidrs(eni))

    def forget(self, eni_id: str) -> None:
        self.attachments.pop(eni_id, None)
        self.eni_subnets.pop(eni_id, None)
