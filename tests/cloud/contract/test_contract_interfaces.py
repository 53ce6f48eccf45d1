"""The provider contract, interfaces: what ipamd relies on of the instance, its ENIs, their addresses and
/28 prefixes, attach limits, detach/delete, and DeleteOnTermination — the same cases on the fake and on
the AWS provider over the local cloud (``world``, see conftest.py)."""

from __future__ import annotations

import ipaddress

import pytest

from tests.cloud.contract.conftest import World
from vpccni.cloud.aws.tags import TAG_INSTANCE_ID
from vpccni.config import limits
from vpccni.config.limits import InstanceLimits
from vpccni.errors import (
    AddressLimitExceeded,
    CloudInvalidRequest,
    CloudNotFound,
    EniLimitExceeded,
    UnknownInstanceType,
)

UNKNOWN_INSTANCE = "i-0123456789abcdef0"
UNKNOWN_ENI = "eni-0123456789abcdef0"


def usable(address: str, cidr: str) -> bool:
    """Inside the subnet and not one of the five addresses AWS reserves."""
    net = ipaddress.IPv4Network(cidr)
    value = int(ipaddress.IPv4Address(address))
    return int(net.network_address) + 4 <= value <= int(net.broadcast_address) - 1


# --- the instance ------------------------------------------------------------------------------------------


def test_describe_the_instance_and_its_primary_interface(world: World) -> None:
    node = world.node("m5.large")
    info = world.provider.describe_instance(node.instance_id)
    assert (info.instance_type, info.state, info.availability_zone) == ("m5.large", "running",
                                                                         node.availability_zone)
    assert (info.subnet_id, info.vpc_id, info.primary_interface_id) == (node.subnet_id, node.vpc_id,
                                                                         node.primary_eni_id)
    assert len(info.security_group_ids) == 1
    assert [(s.interface_id, s.device_index) for s in info.interfaces] == [(node.primary_eni_id, 0)]
    assert info.lowest_free_device_index() == 1

    [primary] = world.provider.describe_instance_interfaces(node.instance_id)
    assert (primary.interface_id, primary.primary_address, primary.mac) == (node.primary_eni_id,
                                                                            node.primary_ip, node.mac)
    assert primary.status == "in-use" and primary.secondary_addresses == () and primary.prefixes == ()
    assert primary.attachment is not None and primary.attachment.device_index == 0
    assert primary.attachment.delete_on_termination is True, "EC2 launches the primary ENI with DOT"
    assert primary.description == "Primary network interface"
    with pytest.raises(CloudNotFound) as missing:
        world.provider.describe_instance(UNKNOWN_INSTANCE)
    assert missing.value.code == "InvalidInstanceID.NotFound"
    assert world.provider.describe_instance_interfaces(UNKNOWN_INSTANCE) == []


def test_describe_instance_type_reads_back_as_the_bundled_limits(world: World) -> None:
    item = world.provider.describe_instance_type("m5.large")
    assert InstanceLimits.from_describe(item) == limits.require("m5.large")
    with pytest.raises(UnknownInstanceType, match="x9.bogus"):
        world.provider.describe_instance_type("x9.bogus")


# --- create ------------------------------------------------------------------------------------------------


def test_create_with_addresses_and_tags_in_one_call(world: World) -> None:
    node = world.node()
    before = world.calls("CreateNetworkInterface")
    eni = world.new_eni(node, secondary_address_count=3, tags={TAG_INSTANCE_ID: node.instance_id, "a": "b"})
    assert world.calls("CreateNetworkInterface") - before == 1
    assert (eni.status, eni.attachment, eni.subnet_id, eni.vpc_id) == ("available", None, node.subnet_id,
                                                                        node.vpc_id)
    assert dict(eni.tags) == {TAG_INSTANCE_ID: node.instance_id, "a": "b"}
    assert eni.description == f"aws-K8S-{node.instance_id}"
    assert eni.security_group_ids == world.provider.describe_instance(node.instance_id).security_group_ids
    assert len(eni.secondary_addresses) == 3 and eni.prefixes == ()
    [subnet] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    everything = [node.primary_ip, *eni.addresses]
    assert len(set(everything)) == 5, "unique across the subnet"
    assert all(usable(a, subnet.cidr) for a in everything), "inside the subnet, never a reserved address"
    assert world.provider.describe_interfaces([eni.interface_id]) == [eni], "describe agrees with create"


def test_create_with_prefixes(world: World) -> None:
    node = world.node()
    eni = world.new_eni(node, prefix_count=2)
    assert eni.secondary_addresses == () and len(eni.prefixes) == 2
    [subnet] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    taken = {node.primary_ip, eni.primary_address}
    blocks = [ipaddress.IPv4Network(p) for p in eni.prefixes]  # strict: an unaligned /28 would raise
    assert all(b.prefixlen == 28 and b.subnet_of(ipaddress.IPv4Network(subnet.cidr)) for b in blocks)
    assert not blocks[0].overlaps(blocks[1])
    assert not any(ipaddress.IPv4Address(a) in b for a in taken for b in blocks), "clear of addresses"
    with pytest.raises(ValueError, match="secondary_address_count OR prefix_count"):
        world.new_eni(node, secondary_address_count=1, prefix_count=1)


def test_create_in_an_unknown_subnet_is_not_found(world: World) -> None:
    node = world.node()
    with pytest.raises(CloudNotFound) as missing:
        world.new_eni(node, subnet_id="subnet-0123456789abcdef0")
    assert missing.value.code == "InvalidSubnetID.NotFound"


# --- attach ------------------------------------------------------------------------------------------------


def test_attach_at_the_lowest_free_index_up_to_the_limit(world: World) -> None:
    node = world.node("m5.large")  # 3 ENIs
    first, second, third = (world.new_eni(node) for _ in range(3))
    for eni in (first, second):
        index = world.provider.describe_instance(node.instance_id).lowest_free_device_index()
        world.provider.attach_interface(eni.interface_id, node.instance_id, index or 0)
    attached = world.provider.describe_instance_interfaces(node.instance_id)
    assert [(e.interface_id, e.device_index) for e in attached] == [
        (node.primary_eni_id, 0), (first.interface_id, 1), (second.interface_id, 2)]
    assert all(e.status == "in-use" for e in attached)
    with pytest.raises(EniLimitExceeded) as limit:
        world.provider.attach_interface(third.interface_id, node.instance_id, 3)
    assert limit.value.code == "AttachmentLimitExceeded"
    with pytest.raises(CloudInvalidRequest) as in_use:
        world.provider.attach_interface(first.interface_id, node.instance_id, 3)
    assert in_use.value.code == "InvalidNetworkInterface.InUse"

    [first_now] = world.provider.describe_interfaces([first.interface_id])
    assert first_now.attachment is not None
    assert world.provider.detach_interface(first_now.attachment.attachment_id) is True
    assert world.provider.describe_instance(node.instance_id).lowest_free_device_index() == 1
    with pytest.raises(CloudInvalidRequest) as taken:
        world.provider.attach_interface(third.interface_id, node.instance_id, 2)
    assert taken.value.code == "InvalidParameterValue", "device index 2 is taken"
    world.provider.attach_interface(third.interface_id, node.instance_id, 1)


def test_attach_checks_the_addresses_against_the_type(world: World) -> None:
    node = world.node("t3.medium")  # 6 IPv4 addresses per ENI
    crowded = world.new_eni(node, secondary_address_count=6)  # fine while unattached: 7 of 64
    with pytest.raises(AddressLimitExceeded) as over:
        world.provider.attach_interface(crowded.interface_id, node.instance_id, 1)
    assert over.value.code == "PrivateIpAddressLimitExceeded"
    with pytest.raises(AddressLimitExceeded):  # 65 addresses: more than any type holds on one ENI
        world.new_eni(node, secondary_address_count=64)


# --- addresses and prefixes --------------------------------------------------------------------------------


def test_assign_addresses_up_to_the_per_eni_limit(world: World) -> None:
    node = world.node("m5.large")  # 10 IPv4 per ENI, the primary included
    first = world.provider.assign_addresses(node.primary_eni_id, 4)
    second = world.provider.assign_addresses(node.primary_eni_id, 5)
    assert len(first) == 4 and len(second) == 5 and not set(first) & set(second), "only the new ones"
    [primary] = world.provider.describe_interfaces([node.primary_eni_id])
    assert set(primary.secondary_addresses) == set(first) | set(second)
    with pytest.raises(AddressLimitExceeded) as full:
        world.provider.assign_addresses(node.primary_eni_id, 1)
    assert full.value.code == "PrivateIpAddressLimitExceeded"
    with pytest.raises(CloudNotFound) as missing:
        world.provider.assign_addresses(UNKNOWN_ENI, 1)
    assert missing.value.code == "InvalidNetworkInterfaceID.NotFound"
    with pytest.raises(ValueError, match="count must be >= 1"):
        world.provider.assign_addresses(node.primary_eni_id, 0)


def test_prefixes_take_one_slot_each_and_share_them_with_addresses(world: World) -> None:
    node = world.node("m5.large")
    addresses = world.provider.assign_addresses(node.primary_eni_id, 2)
    prefixes = world.provider.assign_prefixes(node.primary_eni_id, 7)  # 1 + 2 + 7 = 10 slots
    assert len(prefixes) == 7 and len({ipaddress.IPv4Network(p) for p in prefixes}) == 7
    assert not any(ipaddress.IPv4Address(a) in ipaddress.IPv4Network(p) for a in addresses for p in prefixes)
    with pytest.raises(AddressLimitExceeded):
        world.provider.assign_prefixes(node.primary_eni_id, 1)
    [primary] = world.provider.describe_interfaces([node.primary_eni_id])
    assert set(primary.prefixes) == set(prefixes)


def test_unassign_gives_addresses_and_prefixes_back(world: World) -> None:
    node = world.node()
    [before] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    addresses = world.provider.assign_addresses(node.primary_eni_id, 3)
    prefixes = world.provider.assign_prefixes(node.primary_eni_id, 2)
    [during] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    assert before.available_address_count - during.available_address_count == 3 + 2 * 16
    world.provider.unassign_addresses(node.primary_eni_id, addresses[:2])
    world.provider.unassign_prefixes(node.primary_eni_id, prefixes[:1])
    [primary] = world.provider.describe_interfaces([node.primary_eni_id])
    assert (primary.secondary_addresses, primary.prefixes) == (tuple(addresses[2:]), tuple(prefixes[1:]))
    [after] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    assert after.available_address_count - during.available_address_count == 2 + 16
    for wrong in ([node.primary_ip], [addresses[0]]):  # the primary; one no longer held
        with pytest.raises(CloudInvalidRequest) as refused:
            world.provider.unassign_addresses(node.primary_eni_id, wrong)
        assert refused.value.code == "InvalidParameterValue"
    with pytest.raises(CloudInvalidRequest):
        world.provider.unassign_prefixes(node.primary_eni_id, prefixes[:1])


# --- detach, delete, DeleteOnTermination -------------------------------------------------------------------


def test_detach_and_delete_are_idempotent(world: World) -> None:
    node = world.node()
    eni = world.new_eni(node, secondary_address_count=2)
    attachment_id = world.provider.attach_interface(eni.interface_id, node.instance_id, 1)
    with pytest.raises(CloudInvalidRequest) as in_use:
        world.provider.delete_interface(eni.interface_id)
    assert in_use.value.code == "InvalidParameterValue", "an attached ENI cannot be deleted"
    primary = world.provider.describe_instance_interfaces(node.instance_id)[0]
    assert primary.attachment is not None
    with pytest.raises(CloudInvalidRequest) as primary_stays:
        world.provider.detach_interface(primary.attachment.attachment_id)
    assert primary_stays.value.code == "OperationNotPermitted"

    assert world.provider.detach_interface(attachment_id) is True
    [detached] = world.provider.describe_interfaces([eni.interface_id])
    assert detached.attachment is None and detached.status == "available"
    assert world.provider.detach_interface(attachment_id) is False
    assert world.provider.delete_interface(eni.interface_id) is True
    assert world.provider.delete_interface(eni.interface_id) is False
    assert world.provider.describe_interfaces([eni.interface_id]) == []


def test_delete_on_termination_decides_what_termination_deletes(world: World) -> None:
    node = world.node()
    kept, deleted = (world.new_eni(node, secondary_address_count=1) for _ in range(2))
    kept_attachment = world.provider.attach_interface(kept.interface_id, node.instance_id, 1)
    deleted_attachment = world.provider.attach_interface(deleted.interface_id, node.instance_id, 2)
    world.provider.set_delete_on_termination(deleted.interface_id, deleted_attachment, True)
    with pytest.raises(CloudNotFound) as wrong:
        world.provider.set_delete_on_termination(kept.interface_id, deleted_attachment, True)
    assert wrong.value.code == "InvalidAttachmentID.NotFound"
    by_id = {e.interface_id: e for e in world.provider.describe_instance_interfaces(node.instance_id)}
    assert by_id[deleted.interface_id].attachment.delete_on_termination is True  # type: ignore[union-attr]
    assert by_id[kept.interface_id].attachment.delete_on_termination is False  # type: ignore[union-attr]
    assert kept_attachment != deleted_attachment

    [before] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    world.terminate(node.instance_id)
    found = world.provider.describe_interfaces([kept.interface_id, deleted.interface_id, node.primary_eni_id])
    assert [(e.interface_id, e.status, e.attachment) for e in found] == [
        (kept.interface_id, "available", None)]
    [after] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    freed = after.available_address_count - before.available_address_count
    assert freed == 2 + 1, "the DeleteOnTermination ENI's two addresses and the primary ENI's one"
    assert world.provider.describe_instance_interfaces(node.instance_id) == []
    # A terminated instance lists no interfaces; the AWS provider's parser needs the device-0 one.
    with pytest.raises(CloudInvalidRequest, match="no device-index-0 interface"):
        world.provider.describe_instance(node.instance_id)
