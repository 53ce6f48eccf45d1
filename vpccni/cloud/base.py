"""The cloud provider interface, in cloud-neutral terms.

ipamd's reconciler talks to the cloud only through :class:`CloudProvider`. The vocabulary is that of
any VPC-native cloud: a *network interface* (AWS ENI, Azure NIC) attached to an *instance* at a
*device index*, carrying a primary address plus *secondary addresses* (AWS secondary private IPs,
Azure ipConfigurations) or delegated *prefixes* (AWS /28 prefixes), living in a *subnet* with a
free-address count. An Azure-style provider would map ipConfigurations to secondary addresses and
report no prefixes (as the Azure provider does); nothing here names an AWS API. Three capability properties
say what a provider cannot do, so that ipamd never asks for it.

Results are plain frozen dataclasses so that snapshots can be kept, compared and logged. Every method
may raise the cloud errors of :mod:`vpccni.errors` (retryable ones only after the provider's own
retries are spent); no third-party exception type crosses this boundary.

Mutations whose outcome is ambiguous (a timeout after the cloud may have acted) are retried by the
provider where that is safe (see the provider's docs); callers resynchronise the rest by describing
the interface and comparing it with what they expected. The cloud is the truth for every removal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

Tags = tuple[tuple[str, str], ...]
"""Tags as sorted ``(key, value)`` pairs: hashable, so results stay frozen and comparable."""


def freeze_tags(tags: Mapping[str, str]) -> Tags:
    """The canonical (sorted) frozen form of a tag mapping."""
    return tuple(sorted(tags.items()))


@dataclass(frozen=True)
class Attachment:
    """How an interface is attached to an instance."""

    attachment_id: str
    instance_id: str
    device_index: int
    status: str  # "attaching" | "attached" | "detaching" | "detached"
    delete_on_termination: bool
    network_card_index: int = 0


@dataclass(frozen=True)
class NetworkInterface:
    """A network interface with everything the IPAM needs to know about it."""

    interface_id: str
    subnet_id: str
    vpc_id: str
    availability_zone: str
    mac: str
    status: str  # "available" | "in-use" | "attaching" | "detaching" | ...
    primary_address: str
    secondary_addresses: tuple[str, ...]  # in the order the cloud lists them
    prefixes: tuple[str, ...]  # delegated IPv4 prefixes, e.g. ("10.0.1.32/28",)
    security_group_ids: tuple[str, ...]
    description: str = ""
    tags: Tags = ()
    attachment: Attachment | None = None
    interface_type: str = "interface"  # "interface" | "trunk" | "efa" | ...
    requester_managed: bool = False

    def tag(self, key: str) -> str | None:
        """The value of tag ``key``, or None when the interface does not carry it."""
        return dict(self.tags).get(key)

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every IPv4 address on the interface, primary first."""
        return (self.primary_address, *self.secondary_addresses)

    @property
    def device_index(self) -> int | None:
        return self.attachment.device_index if self.attachment else None


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    availability_zone: str
    cidr: str  # "10.0.1.0/24"
    available_address_count: int  # free IPv4 addresses as the cloud counts them
    tags: Tags = ()

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


@dataclass(frozen=True)
class InterfaceSlot:
    """One interface attached to an instance, as the instance lists it."""

    interface_id: str
    device_index: int
    network_card_index: int = 0


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    instance_type: str
    availability_zone: str
    subnet_id: str  # the primary interface's subnet
    vpc_id: str
    primary_interface_id: str
    security_group_ids: tuple[str, ...]  # of the primary interface
    state: str  # "pending" | "running" | "stopping" | "stopped" | "terminated" | ...
    interfaces: tuple[InterfaceSlot, ...] = ()

    def lowest_free_device_index(self, network_card_index: int = 0, limit: int = 100) -> int | None:
        """The lowest device index not in use on ``network_card_index`` (None if all ``limit`` are)."""
        used = {s.device_index for s in self.interfaces if s.network_card_index == network_card_index}
        return next((i for i in range(limit) if i not in used), None)


def check_create_counts(secondary_address_count: int, prefix_count: int) -> None:
    """ValueError unless a new interface asks for secondary addresses or /28 prefixes (not both, none < 0):
    the contract of :meth:`CloudProvider.create_interface` every provider checks alike."""
    if secondary_address_count < 0 or prefix_count < 0 or (secondary_address_count and prefix_count):
        raise ValueError(
            "create_interface takes secondary_address_count OR prefix_count (>= 0), "
            f"got {secondary_address_count} and {prefix_count}"
        )


class CloudProvider(Protocol):
    """The one interface between ipamd and a cloud. Blocking; call it from worker threads."""

    # --- what the cloud can do (constant per provider; ipamd never asks for what these rule out) -----

    @property
    def can_attach_interfaces(self) -> bool:
        """Interfaces can be created, attached, detached and deleted while the instance runs. False
        (Azure): the pool grows only by addresses on the interfaces the instance booted with, and the
        create/attach/detach/delete methods raise :class:`~vpccni.errors.CloudUnsupported`."""
        ...

    @property
    def supports_prefixes(self) -> bool:
        """Delegated prefixes exist; False: ``assign_prefixes``/``unassign_prefixes`` are unsupported."""
        ...

    @property
    def address_writes_are_batched(self) -> bool:
        """Every address write rewrites the interface (Azure: one NIC PUT, a long-running operation), so
        adding one address costs what adding many does: the pool should grow and shrink in batches."""
        ...

    # --- the instance ----------------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> InstanceInfo:
        """The instance's type, placement, primary interface and attached interfaces."""
        ...

    def describe_instance_type(self, instance_type: str) -> Mapping[str, object]:
        """Network limits of ``instance_type`` as EC2's ``InstanceTypeInfo`` mapping (``NetworkInfo``,
        ``Hypervisor``, ``BareMetal``, ...), for :mod:`vpccni.config.limits` to parse.

        Raises :class:`~vpccni.errors.UnknownInstanceType` when the cloud does not know the type.
        """
        ...

    # --- network interfaces ----------------------------------------------------------------------

    def describe_instance_interfaces(self, instance_id: str) -> list[NetworkInterface]:
        """Every interface attached to ``instance_id``, by device index."""
        ...

    def describe_interfaces(self, interface_ids: Sequence[str]) -> list[NetworkInterface]:
        """The interfaces among ``interface_ids`` that exist; missing ones are simply absent."""
        ...

    def describe_leaked_interfaces(
        self, *, vpc_id: str, owner_tag_key: str, required_tags: Mapping[str, str] | None = None
    ) -> list[NetworkInterface]:
        """Detached (status available) interfaces in ``vpc_id`` that carry ``owner_tag_key`` and every
        tag in ``required_tags`` (e.g. the cluster name): candidates for leaked-interface GC."""
        ...

    def create_interface(
        self,
        *,
        subnet_id: str,
        security_group_ids: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        secondary_address_count: int = 0,
        prefix_count: int = 0,
    ) -> NetworkInterface:
        """Create an interface with its addresses OR prefixes (not both) and tags in ONE call."""
        ...

    def attach_interface(
        self, interface_id: str, instance_id: str, device_index: int, network_card_index: int = 0
    ) -> str:
        """Attach at ``device_index``; returns the attachment id."""
        ...

    def set_delete_on_termination(
        self, interface_id: str, attachment_id: str, enabled: bool = True
    ) -> None: ...

    def detach_interface(self, attachment_id: str, *, force: bool = False) -> bool:
        """Detach; False when the attachment was already gone (idempotent)."""
        ...

    def delete_interface(self, interface_id: str) -> bool:
        """Delete a detached interface; False when it was already gone (idempotent)."""
        ...

    # --- secondary addresses and prefixes --------------------------------------------------------

    def assign_addresses(self, interface_id: str, count: int) -> list[str]:
        """Assign ``count`` new secondary addresses; returns the new ones only."""
        ...

    def unassign_addresses(self, interface_id: str, addresses: Sequence[str]) -> None: ...

    def assign_prefixes(self, interface_id: str, count: int) -> list[str]:
        """Delegate ``count`` new /28 prefixes; returns the new ones only."""
        ...

    def unassign_prefixes(self, interface_id: str, prefixes: Sequence[str]) -> None: ...

    # --- tags and subnets ------------------------------------------------------------------------

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        """Add or overwrite ``tags`` on every resource in ``resource_ids``."""
        ...

    def describe_subnets(
        self,
        *,
        vpc_id: str | None = None,
        availability_zone: str | None = None,
        subnet_ids: Sequence[str] | None = None,
    ) -> list[Subnet]:
        """Subnets matching every given criterion, most free addresses first."""
        ...
