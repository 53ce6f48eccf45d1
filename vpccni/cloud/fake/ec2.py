"""What each EC2 action does to the fake's state, with EC2's checks in the order a caller meets them.

The rules and the codes are the local cloud's (:mod:`vpccni.localcloud.ec2`, the reference; the contract
tests in ``tests/cloud/contract`` run the same cases against both), which are real EC2's:

- CreateNetworkInterface: unknown subnet or group (NotFound), more slots than the largest type allows
  per ENI (``PrivateIpAddressLimitExceeded``), then the primary and secondaries (unique, never the five
  reserved addresses: ``InsufficientFreeAddressesInSubnet``), then /28s clear of those
  (``InsufficientCidrBlocks``). No group named: the VPC's default group.
- AttachNetworkInterface: negative device index, instance not running/stopped
  (``IncorrectInstanceState``), ENI attached already (``InvalidNetworkInterface.InUse``), no such network
  card, device index taken, past the type's ENIs per card (``AttachmentLimitExceeded``), ENI holding more
  than the type allows per ENI (``PrivateIpAddressLimitExceeded``), another zone.
- Detach refuses device index 0 (``OperationNotPermitted``) and is immediate (no "detaching" phase, as in
  the local cloud); the attachment's DeleteOnTermination goes with it.
- Delete refuses an attached ENI (``InvalidParameterValue`` "... currently in use").
- Assign checks slots (primary + secondaries + one per /28, against the attached type's
  ``Ipv4AddressesPerInterface``) before the subnet's room; Unassign refuses the primary and anything the
  ENI does not hold. Answers list only what the call assigned.
- CreateTags checks that each resource exists (real EC2 does; the local cloud lets unknown ids pass).
- TerminateInstances deletes the DeleteOnTermination ENIs and detaches the others to ``available``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from vpccni.cloud.addressing import NoFreeBlock, SubnetExhausted, SubnetSpace
from vpccni.cloud.base import InstanceInfo, NetworkInterface, Subnet
from vpccni.cloud.fake.model import (
    PRIMARY_DESCRIPTION,
    AttachmentRec,
    EniRec,
    InstanceRec,
    SubnetRec,
    instance_type_item,
    instance_view,
    interface_view,
    subnet_view,
)
from vpccni.cloud.fake.state import Ec2Error, FakeState, invalid_parameter
from vpccni.errors import UnknownInstanceType

# --- describes -----------------------------------------------------------------------------------------


def describe_instance(state: FakeState, instance_id: str) -> InstanceInfo | None:
    """The instance; None when it lists no primary interface (terminated: EC2 shows none then)."""
    instance = state.instance(instance_id)
    primary = state.attached.get(instance_id, {}).get(instance.primary_eni_id)
    if primary is None:
        return None
    return instance_view(instance, state.attached_enis(instance_id), primary)


def describe_instance_type(state: FakeState, instance_type: str) -> dict[str, Any]:
    limits = state.limits_for(instance_type)
    if limits is None:
        raise Ec2Error("InvalidInstanceType", f"The following supplied instance types do not exist: "
                       f"[{instance_type}]")
    return instance_type_item(limits)


def describe_instance_interfaces(state: FakeState, instance_id: str) -> list[NetworkInterface]:
    return [interface_view(e) for e in state.attached_enis(instance_id)]


def describe_interfaces(state: FakeState, interface_ids: Sequence[str]) -> list[NetworkInterface]:
    found = (state.enis.get(i) for i in dict.fromkeys(interface_ids))
    return [interface_view(e) for e in found if e is not None]


def describe_leaked_interfaces(state: FakeState, vpc_id: str, owner_tag_key: str,
                               required_tags: Mapping[str, str]) -> list[NetworkInterface]:
    return [interface_view(e) for e in state.enis.values()
            if e.attachment is None and e.subnet.vpc_id == vpc_id and owner_tag_key in e.tags
            and all(e.tags.get(k) == v for k, v in required_tags.items())]


def describe_subnets(state: FakeState, vpc_id: str | None, availability_zone: str | None,
                     subnet_ids: Sequence[str] | None) -> list[Subnet]:
    wanted = set(subnet_ids) if subnet_ids is not None else None
    found = [subnet_view(s) for s in state.subnets.values()
             if (vpc_id is None or s.vpc_id == vpc_id)
             and (availability_zone is None or s.availability_zone == availability_zone)
             and (wanted is None or s.subnet_id in wanted)]
    return sorted(found, key=lambda s: (-s.available_address_count, s.subnet_id))


# --- interfaces ------------------------------------------------------------------------------------------


def create_interface(state: FakeState, *, subnet_id: str, group_ids: Sequence[str], description: str,
                     tags: Mapping[str, str], address_count: int, prefix_count: int) -> NetworkInterface:
    subnet = state.subnet(subnet_id)
    groups = security_groups(state, subnet, group_ids)
    check_slots(0, 1 + address_count + prefix_count, state.unattached_slot_limit())
    space = subnet.space()
    addresses = choose_addresses(space, 1 + address_count, state.rng)
    prefixes = choose_prefixes(space.plus(addresses), prefix_count, state.rng) if prefix_count else []
    subnet.take(addresses, prefixes)
    eni = EniRec(state.new_id("eni"), subnet, state.new_mac(), description, groups, addresses[0],
                 addresses[1:], prefixes, dict(tags))
    state.enis[eni.eni_id] = eni
    return interface_view(eni)


def attach_interface(state: FakeState, interface_id: str, instance_id: str, device_index: int,
                     network_card_index: int) -> str:
    eni = state.eni(interface_id)
    instance = state.instance(instance_id)
    if device_index < 0:
        raise invalid_parameter(f"Invalid value '{device_index}' for DeviceIndex: must not be negative")
    if instance.state not in ("running", "stopped"):
        raise Ec2Error("IncorrectInstanceState",
                       f"The instance '{instance_id}' is not in a valid state for this operation.")
    if eni.attachment is not None:
        raise Ec2Error("InvalidNetworkInterface.InUse", f"Interface: [{interface_id}] in use.")
    limits = instance.limits
    if not 0 <= network_card_index < limits.network_cards:
        raise invalid_parameter(f"Network card index '{network_card_index}' is not valid for "
                                f"{instance.instance_type}.")
    on_card = [e for e in state.attached_enis(instance_id)
               if e.attachment is not None and e.attachment.network_card_index == network_card_index]
    if any(e.attachment is not None and e.attachment.device_index == device_index for e in on_card):
        raise invalid_parameter(f"Instance '{instance_id}' already has an interface attached at device "
                                f"index '{device_index}'.")
    if len(on_card) + 1 > limits.max_enis:
        # Per card: the limit ipamd reads is the default card's (vpccni.config.limits).
        raise Ec2Error("AttachmentLimitExceeded",
                       f"Interface count {len(on_card) + 1} exceeds the limit for {instance.instance_type}")
    check_slots(eni.slots_used, 0, limits.ipv4_per_eni)
    if eni.subnet.availability_zone != instance.subnet.availability_zone:
        raise Ec2Error("InvalidParameterCombination", f"The network interface {interface_id} and instance "
                       f"{instance_id} are not in the same availability zone.")
    eni.attachment = AttachmentRec(state.new_id("eni-attach"), instance_id, device_index, network_card_index)
    state.link(eni)
    return eni.attachment.attachment_id


def set_delete_on_termination(state: FakeState, interface_id: str, attachment_id: str, enabled: bool) -> None:
    eni = state.eni(interface_id)
    if eni.attachment is None or eni.attachment.attachment_id != attachment_id:
        raise Ec2Error("InvalidAttachmentID.NotFound", f"The attachment ID '{attachment_id}' does not exist")
    eni.attachment.delete_on_termination = enabled


def detach_interface(state: FakeState, attachment_id: str) -> None:
    eni = state.eni_by_attachment(attachment_id)
    assert eni.attachment is not None
    if eni.attachment.device_index == 0 and eni.attachment.network_card_index == 0:
        raise Ec2Error("OperationNotPermitted", "The network interface at device index 0 cannot be detached.")
    state.unlink(eni)


def delete_interface(state: FakeState, interface_id: str) -> None:
    eni = state.eni(interface_id)
    if eni.attachment is not None:
        raise invalid_parameter(f"Network interface '{interface_id}' is currently in use.")
    state.drop(eni)


# --- addresses and prefixes ------------------------------------------------------------------------------


def assign_addresses(state: FakeState, interface_id: str, count: int) -> list[str]:
    eni = state.eni(interface_id)
    check_slots(eni.slots_used, count, state.slot_limit(eni))
    new = choose_addresses(eni.subnet.space(), count, state.rng)
    eni.subnet.take(new)
    eni.secondaries.extend(new)
    return new


def assign_prefixes(state: FakeState, interface_id: str, count: int) -> list[str]:
    eni = state.eni(interface_id)
    check_slots(eni.slots_used, count, state.slot_limit(eni))
    new = choose_prefixes(eni.subnet.space(), count, state.rng)
    eni.subnet.take(prefixes=new)
    eni.prefixes.extend(new)
    return new


def unassign(state: FakeState, interface_id: str, addresses: Sequence[str], prefixes: Sequence[str]) -> None:
    eni = state.eni(interface_id)
    if eni.primary in addresses:
        raise invalid_parameter(f"The primary IP address {eni.primary} of an interface cannot be unassigned.")
    if not set(addresses) <= set(eni.secondaries):
        raise invalid_parameter(f"Some of the specified addresses are not assigned to interface {eni.eni_id}")
    if not set(prefixes) <= set(eni.prefixes):
        raise invalid_parameter(f"Some of the specified prefixes are not assigned to interface {eni.eni_id}")
    gone_addresses, gone_prefixes = set(addresses), set(prefixes)
    eni.secondaries = [a for a in eni.secondaries if a not in gone_addresses]
    eni.prefixes = [p for p in eni.prefixes if p not in gone_prefixes]
    eni.subnet.give_back(sorted(gone_addresses), sorted(gone_prefixes))


# --- tags --------------------------------------------------------------------------------------------------


def create_tags(state: FakeState, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
    targets: list[dict[str, str]] = []
    for resource_id in resource_ids:  # all or nothing: check every id before tagging any
        kind = resource_id.split("-", 1)[0]
        if kind == "eni":
            targets.append(state.eni(resource_id).tags)
        elif kind == "subnet":
            targets.append(state.subnet(resource_id).tags)
        elif kind == "i":
            state.instance(resource_id)
            targets.append(state.other_tags.setdefault(resource_id, {}))
        elif kind == "vpc" and resource_id in state.vpcs or kind == "sg" and resource_id in state.groups:
            targets.append(state.other_tags.setdefault(resource_id, {}))
        elif kind in ("vpc", "sg"):
            code = "InvalidVpcID.NotFound" if kind == "vpc" else "InvalidGroup.NotFound"
            raise Ec2Error(code, f"The ID '{resource_id}' does not exist")
        else:
            raise Ec2Error("InvalidID", f"The ID '{resource_id}' is not valid")
    for target in targets:
        target.update(tags)


# --- instances (the scenario helpers' RunInstances and TerminateInstances) -------------------------------


def run_instance(state: FakeState, instance_type: str, subnet_id: str,
                 group_ids: Sequence[str]) -> InstanceRec:
    limits = state.limits_for(instance_type)
    if limits is None:
        raise UnknownInstanceType(instance_type)
    subnet = state.subnet(subnet_id)
    groups = security_groups(state, subnet, group_ids)
    [address] = choose_addresses(subnet.space(), 1, state.rng)
    subnet.take([address])
    instance_id = state.new_id("i")
    eni = EniRec(state.new_id("eni"), subnet, state.new_mac(), PRIMARY_DESCRIPTION, groups, address)
    eni.attachment = AttachmentRec(state.new_id("eni-attach"), instance_id, 0, 0, delete_on_termination=True)
    state.enis[eni.eni_id] = eni
    state.link(eni)
    instance = InstanceRec(instance_id, instance_type, limits, subnet, eni.eni_id)
    state.instances[instance_id] = instance
    return instance


def terminate_instance(state: FakeState, instance_id: str) -> None:
    state.instance(instance_id).state = "terminated"
    for eni in state.attached_enis(instance_id):
        if eni.attachment is not None and eni.attachment.delete_on_termination:
            state.drop(eni)
        else:
            state.unlink(eni)


# --- shared rules ------------------------------------------------------------------------------------------


def security_groups(state: FakeState, subnet: SubnetRec, group_ids: Sequence[str]) -> tuple[str, ...]:
    if not group_ids:
        return (state.vpcs[subnet.vpc_id].default_group,)
    for group_id in group_ids:
        if state.group(group_id) != subnet.vpc_id:
            raise Ec2Error("InvalidParameter", f"Security group {group_id} and subnet {subnet.subnet_id} "
                           "belong to different networks.")
    return tuple(dict.fromkeys(group_ids))


def check_slots(used: int, adding: int, limit: int) -> None:
    if used + adding > limit:
        raise Ec2Error("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")


def choose_addresses(space: SubnetSpace, count: int, rng: random.Random) -> list[str]:
    try:
        return space.choose_addresses(count, rng)
    except SubnetExhausted:
        raise Ec2Error("InsufficientFreeAddressesInSubnet", "The specified subnet does not have enough free "
                       "addresses to satisfy the request.") from None


def choose_prefixes(space: SubnetSpace, count: int, rng: random.Random) -> list[str]:
    try:
        return space.choose_prefixes(count, rng)
    except NoFreeBlock:
        raise Ec2Error("InsufficientCidrBlocks", "The specified subnet does not have enough free cidr blocks "
                       "to satisfy the request.") from None
