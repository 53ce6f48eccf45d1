"""The fake EC2's records, and how they look from outside: the provider's frozen result types.

Records are plain mutable objects owned by :class:`~vpccni.cloud.fake.cloud.FakeCloud` and changed only
under its lock; every answer is a fresh frozen snapshot (:func:`interface_view`, :func:`instance_view`,
:func:`subnet_view`), so nothing a caller keeps changes under it. Also here: the handles the scenario
helpers return (:class:`Vpc`, :class:`SubnetRef`, :class:`Node`, the same fields as the local cloud's) and
the ``DescribeInstanceTypes`` item built from :class:`~vpccni.config.limits.InstanceLimits`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from vpccni.cloud.addressing import SubnetSpace
from vpccni.cloud.base import Attachment, InstanceInfo, InterfaceSlot, NetworkInterface, Subnet, freeze_tags
from vpccni.config.limits import InstanceLimits

PRIMARY_DESCRIPTION = "Primary network interface"  # what EC2 (and moto) call an instance's own ENI


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr: str


@dataclass(frozen=True)
class SubnetRef:
    """A subnet as the scenario helpers return it (its free count is asked of the cloud, it changes)."""

    subnet_id: str
    vpc_id: str
    cidr: str
    availability_zone: str
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Node:
    """One running instance, with what a test needs to address it (the local cloud's Node minus IMDS)."""

    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    subnet_id: str
    vpc_id: str
    primary_eni_id: str
    primary_ip: str
    mac: str


@dataclass
class VpcRec:
    vpc_id: str
    network: ipaddress.IPv4Network
    default_group: str
    groups: set[str] = field(default_factory=set)


@dataclass
class SubnetRec:
    subnet_id: str
    vpc_id: str
    availability_zone: str
    network: ipaddress.IPv4Network
    tags: dict[str, str] = field(default_factory=dict)
    used: set[int] = field(default_factory=set)  # every taken address, prefixes expanded

    def space(self) -> SubnetSpace:
        """The subnet as the pure address chooser sees it (the live set: use it before changing it)."""
        return SubnetSpace(self.network, self.used)

    def take(self, addresses: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None:
        self.used.update(_ints(addresses, prefixes))

    def give_back(self, addresses: Sequence[str] = (), prefixes: Sequence[str] = ()) -> None:
        self.used.difference_update(_ints(addresses, prefixes))


def _ints(addresses: Sequence[str], prefixes: Sequence[str]) -> list[int]:
    out = [int(ipaddress.IPv4Address(a)) for a in addresses]
    for prefix in prefixes:
        block = ipaddress.IPv4Network(prefix)
        first = int(block.network_address)
        out.extend(range(first, first + block.num_addresses))
    return out


@dataclass
class AttachmentRec:
    attachment_id: str
    instance_id: str
    device_index: int
    network_card_index: int
    delete_on_termination: bool = False


@dataclass
class EniRec:
    eni_id: str
    subnet: SubnetRec
    mac: str
    description: str
    security_group_ids: tuple[str, ...]
    primary: str
    secondaries: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    attachment: AttachmentRec | None = None

    @property
    def slots_used(self) -> int:
        """IPv4 slots taken: the primary, each secondary, and one per /28 (EC2 counts a prefix as one)."""
        return 1 + len(self.secondaries) + len(self.prefixes)


@dataclass
class InstanceRec:
    instance_id: str
    instance_type: str
    limits: InstanceLimits
    subnet: SubnetRec
    primary_eni_id: str
    state: str = "running"


def interface_view(eni: EniRec) -> NetworkInterface:
    a = eni.attachment
    return NetworkInterface(
        interface_id=eni.eni_id,
        subnet_id=eni.subnet.subnet_id,
        vpc_id=eni.subnet.vpc_id,
        availability_zone=eni.subnet.availability_zone,
        mac=eni.mac,
        status="in-use" if a else "available",
        primary_address=eni.primary,
        secondary_addresses=tuple(eni.secondaries),
        prefixes=tuple(eni.prefixes),
        security_group_ids=eni.security_group_ids,
        description=eni.description,
        tags=freeze_tags(eni.tags),
        attachment=Attachment(a.attachment_id, a.instance_id, a.device_index, "attached",
                              a.delete_on_termination, a.network_card_index) if a else None,
    )


def instance_view(instance: InstanceRec, attached: list[EniRec], primary: EniRec) -> InstanceInfo:
    slots = sorted(
        (InterfaceSlot(e.eni_id, e.attachment.device_index, e.attachment.network_card_index)
         for e in attached if e.attachment is not None),
        key=lambda s: (s.network_card_index, s.device_index),
    )
    return InstanceInfo(
        instance_id=instance.instance_id,
        instance_type=instance.instance_type,
        availability_zone=instance.subnet.availability_zone,
        subnet_id=primary.subnet.subnet_id,
        vpc_id=primary.subnet.vpc_id,
        primary_interface_id=primary.eni_id,
        security_group_ids=primary.security_group_ids,
        state=instance.state,
        interfaces=tuple(slots),
    )


def subnet_view(subnet: SubnetRec) -> Subnet:
    return Subnet(subnet.subnet_id, subnet.vpc_id, subnet.availability_zone, str(subnet.network),
                  subnet.space().free_count(), freeze_tags(subnet.tags))


def instance_type_item(limits: InstanceLimits) -> dict[str, Any]:
    """The ``DescribeInstanceTypes`` item that :meth:`InstanceLimits.from_describe` reads back as ``limits``
    (the fields ipamd reads; EC2's item has many more)."""
    return {
        "InstanceType": limits.instance_type,
        "Hypervisor": limits.hypervisor,
        "BareMetal": limits.bare_metal,
        "VCpuInfo": {"DefaultVCpus": limits.vcpus},
        "NetworkInfo": {
            "MaximumNetworkInterfaces": limits.max_enis,
            "Ipv4AddressesPerInterface": limits.ipv4_per_eni,
            "Ipv6AddressesPerInterface": limits.ipv6_per_eni,
            "MaximumNetworkCards": limits.network_cards,
            "DefaultNetworkCardIndex": 0,
            "NetworkCards": [{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": limits.max_enis}],
        },
    }
