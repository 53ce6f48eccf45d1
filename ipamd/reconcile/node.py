"""What the reconciler knows about its node, and the mapping from Settings to the pool's inputs.

Pure: no I/O. The node's identity comes from IMDS and one DescribeInstances at start
(:class:`NodeFacts`); its limits from :mod:`vpccni.config.limits`. From those and
:class:`vpccni.config.settings.Settings` this module derives what :func:`ipamd.pool.decision.decide` takes
(:class:`~ipamd.pool.decision.PoolTargets`, :class:`~ipamd.pool.decision.NodeCapacity`,
:class:`~ipamd.pool.decision.PoolTimers`) and decides which attached ENIs are ours to manage
(:func:`unmanaged_reason`).

aws-node's rules, kept: MAX_ENI caps the instance limit and ENIs we do not manage take slots from it;
max pods is VPCCNI_MAX_PODS, else the Node's capacity (set by the Kubernetes side), else the
instance-type formula; custom networking takes the primary ENI out of the pool; prefix delegation on a
type that cannot delegate falls back to secondary IPs. An ENI is not ours when tagged
``node.k8s.amazonaws.com/no_manage=true``, when it is untagged and MANAGE_UNTAGGED_ENI=false (never the
primary), or when it is a trunk/EFA/requester-managed interface or sits on another network card.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipamd.pool import NodeCapacity, PoolTargets, PoolTimers
from vpccni.cloud.aws.tags import DESCRIPTION_PREFIX, TAG_INSTANCE_ID, TAG_NO_MANAGE
from vpccni.cloud.azure import vm_sizes
from vpccni.cloud.base import NetworkInterface
from vpccni.config import limits as limits_mod
from vpccni.config.limits import InstanceLimits
from vpccni.config.settings import Settings


@dataclass(frozen=True)
class NodeFacts:
    """The node as ipamd found it at start (IMDS identity + DescribeInstances)."""

    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    vpc_id: str
    subnet_id: str  # the primary ENI's subnet
    primary_eni_id: str
    primary_ip: str
    security_group_ids: tuple[str, ...]  # of the primary ENI: what new ENIs get without custom networking

    @property
    def eni_description(self) -> str:
        """aws-node's description of the ENIs it creates; the leaked-ENI sweep requires it."""
        return f"{DESCRIPTION_PREFIX}{self.instance_id}"


@dataclass(frozen=True)
class EniTarget:
    """Where a new ENI goes: a subnet and its security groups (custom networking's ENIConfig)."""

    subnet_id: str
    security_group_ids: tuple[str, ...]


def prefix_delegation(settings: Settings, limits: InstanceLimits) -> bool:
    """ENABLE_PREFIX_DELEGATION where the instance type can do it (aws falls back to secondary IPs)."""
    return settings.enable_prefix_delegation and limits.supports_prefix_delegation


def pool_targets(settings: Settings, limits: InstanceLimits) -> PoolTargets:
    # VPCCNI_SHRINK=aws: aws-node's exact ENI-freeing gate (no margin); otherwise the pool's default margin.
    margin = {"eni_free_margin": 0.0} if settings.shrink == "aws" else {}
    return PoolTargets(
        warm_eni_target=settings.warm_eni_target,
        warm_ip_target=settings.warm_ip_target,
        minimum_ip_target=settings.minimum_ip_target,
        warm_prefix_target=settings.warm_prefix_target,
        prefix_delegation=prefix_delegation(settings, limits),
        ip_batch=settings.ip_batch,
        **margin,
    )


def pool_timers(settings: Settings) -> PoolTimers:
    return PoolTimers(decrease_interval_s=settings.release_spacing, min_eni_age_s=settings.min_eni_age)


def eni_limit(settings: Settings, limits: InstanceLimits) -> int:
    """ENIs the node may attach: the type's limit capped by MAX_ENI."""
    return limits.max_enis if settings.max_eni is None else min(settings.max_eni, limits.max_enis)


def max_pods(settings: Settings, limits: InstanceLimits, node_capacity_pods: int | None = None) -> int:
    """VPCCNI_MAX_PODS, else the Node's ``status.capacity.pods``, else the instance-type formula.

    On Azure ``limits.max_enis`` is the NICs the VM booted with, the formula is
    :func:`vpccni.cloud.azure.vm_sizes.max_pods`'s (at most 250), and whatever the source the pool never
    holds more than the VM's IP configurations allow (256 over all its NICs, less their primaries)."""
    if settings.cloud == "azure":
        vm_cap = vm_sizes.pod_addresses(max(limits.max_enis, 1))
        wanted = settings.max_pods or node_capacity_pods or vm_sizes.MAX_PODS_PER_NODE
        return min(wanted, vm_cap)
    if settings.max_pods is not None:
        return settings.max_pods
    if node_capacity_pods is not None:
        return node_capacity_pods
    return limits_mod.max_pods(
        limits,
        prefix_delegation=prefix_delegation(settings, limits),
        custom_networking=settings.custom_network_cfg,
        max_eni=settings.max_eni,
    )


def node_capacity(
    settings: Settings, limits: InstanceLimits, *, unmanaged_enis: int, node_capacity_pods: int | None = None
) -> NodeCapacity:
    return NodeCapacity(
        max_enis=max(eni_limit(settings, limits) - unmanaged_enis, 0),
        slots_per_eni=limits.ipv4_per_eni,
        max_pods=max_pods(settings, limits, node_capacity_pods),
        primary_serves_pods=not settings.custom_network_cfg,
        interfaces_fixed=settings.cloud == "azure",  # a running VM's NICs can be neither added nor removed
    )


def unmanaged_reason(eni: NetworkInterface, facts: NodeFacts, settings: Settings) -> str | None:
    """Why an ENI attached to this node is not ours to use, or None when it is."""
    is_primary = eni.interface_id == facts.primary_eni_id
    if eni.tag(TAG_NO_MANAGE) == "true" and not is_primary:
        return f"tagged {TAG_NO_MANAGE}=true"
    if eni.interface_type not in ("interface", ""):
        return f"a {eni.interface_type} interface"
    if eni.requester_managed:
        return "requester-managed"
    if eni.attachment is not None and eni.attachment.network_card_index != 0:
        return f"on network card {eni.attachment.network_card_index} (ipamd manages card 0)"
    if not settings.manage_untagged_eni and not is_primary and eni.tag(TAG_INSTANCE_ID) != facts.instance_id:
        return f"not tagged {TAG_INSTANCE_ID}={facts.instance_id} and MANAGE_UNTAGGED_ENI=false"
    return None


def pod_cidrs(eni: NetworkInterface) -> tuple[str, ...]:
    """The CIDRs of an ENI that can serve pods: its secondary addresses as /32s and its /28 prefixes."""
    return (*(f"{address}/32" for address in eni.secondary_addresses), *eni.prefixes)
