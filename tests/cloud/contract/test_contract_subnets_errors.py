"""The provider contract, subnets and errors: free counts and ordering, exhaustion, tags and leaked-ENI
discovery, EC2's error codes as vpccni's exception classes, retries through a CallRunner — and the few
places where the local cloud is known to differ from real EC2 (expected failures there)."""

from __future__ import annotations

import pytest

from tests.cloud.contract.conftest import World
from vpccni.cloud.aws.tags import TAG_CLUSTER_NAME, TAG_INSTANCE_ID
from vpccni.cloud.retry import RetrySettings
from vpccni.errors import (
    AddressLimitExceeded,
    CloudError,
    CloudInvalidRequest,
    CloudNotFound,
    CloudServerError,
    CloudThrottled,
    EniLimitExceeded,
    NoCidrBlock,
    SubnetFull,
    Unauthorized,
)

# --- subnets -----------------------------------------------------------------------------------------------


def test_describe_subnets_most_free_first_with_filters(world: World) -> None:
    vpc, default_subnet, _ = world.cloud.default_network()
    region = world.cloud.region
    small = world.cloud.create_subnet(vpc, "10.0.16.0/24", az=f"{region}b",
                                      tags={"kubernetes.io/role/cni": "0"})
    world.node()  # takes one address of the default subnet
    subnets = world.provider.describe_subnets(vpc_id=vpc.vpc_id)
    assert [s.subnet_id for s in subnets] == [default_subnet.subnet_id, small.subnet_id]
    big, other = subnets
    assert (big.cidr, big.availability_zone) == ("10.0.0.0/20", f"{region}a")
    assert big.tag("kubernetes.io/role/cni") == "1"
    assert big.available_address_count == 4096 - 5 - 1, "a /20 minus AWS's 5 reserved and the node's address"
    assert (other.available_address_count, other.tag("kubernetes.io/role/cni")) == (251, "0")
    in_b = world.provider.describe_subnets(vpc_id=vpc.vpc_id, availability_zone=f"{region}b")
    assert [s.subnet_id for s in in_b] == [small.subnet_id]
    by_id = world.provider.describe_subnets(subnet_ids=[small.subnet_id, "subnet-0123456789abcdef0"])
    assert [s.subnet_id for s in by_id] == [small.subnet_id], "unknown ids are simply absent"


def test_a_full_subnet_refuses_and_counts_down_to_zero(world: World) -> None:
    vpc, _, group = world.cloud.default_network()
    tiny = world.cloud.create_subnet(vpc, "10.0.200.0/28")  # 16 - 5 reserved = 11 usable
    node = world.node("m5.large", subnet=tiny, security_groups=[group])  # 1 taken
    world.provider.assign_addresses(node.primary_eni_id, 9)  # 10 taken, 1 free
    [subnet] = world.provider.describe_subnets(subnet_ids=[tiny.subnet_id])
    assert subnet.available_address_count == 1
    with pytest.raises(SubnetFull) as full:
        world.new_eni(node, secondary_address_count=1)  # needs 2: its primary and one secondary
    assert full.value.code == "InsufficientFreeAddressesInSubnet"
    eni = world.new_eni(node)
    [subnet] = world.provider.describe_subnets(subnet_ids=[tiny.subnet_id])
    assert subnet.available_address_count == 0
    with pytest.raises(SubnetFull):
        world.provider.assign_addresses(eni.interface_id, 1)
    assert world.provider.delete_interface(eni.interface_id)
    [subnet] = world.provider.describe_subnets(subnet_ids=[tiny.subnet_id])
    assert subnet.available_address_count == 1, "a deleted ENI's address is free again"


def test_no_aligned_free_block_is_no_cidr_block_while_addresses_remain(world: World) -> None:
    vpc, _, group = world.cloud.default_network()
    # A /27 holds two /28 blocks: the first has the network, router, DNS and spare addresses, the last the
    # broadcast address, so no /28 can ever be delegated although 26 addresses are free.
    small = world.cloud.create_subnet(vpc, "10.0.201.0/27")
    node = world.node("m5.large", subnet=small, security_groups=[group])
    with pytest.raises(NoCidrBlock) as none:
        world.provider.assign_prefixes(node.primary_eni_id, 1)
    assert none.value.code == "InsufficientCidrBlocks"
    [subnet] = world.provider.describe_subnets(subnet_ids=[small.subnet_id])
    assert subnet.available_address_count == 32 - 5 - 1


# --- tags and leaked interfaces ----------------------------------------------------------------------------


def test_create_tags_adds_and_overwrites(world: World) -> None:
    node = world.node()
    eni = world.new_eni(node, tags={"team": "a"})
    world.provider.create_tags([eni.interface_id], {"team": "net", TAG_INSTANCE_ID: node.instance_id})
    [tagged] = world.provider.describe_interfaces([eni.interface_id])
    assert dict(tagged.tags) == {"team": "net", TAG_INSTANCE_ID: node.instance_id}
    world.provider.create_tags([node.subnet_id], {"x": "y"})
    [subnet] = world.provider.describe_subnets(subnet_ids=[node.subnet_id])
    assert subnet.tag("x") == "y"
    with pytest.raises(CloudInvalidRequest) as malformed:
        world.provider.create_tags(["garbage"], {"x": "y"})
    assert malformed.value.code == "InvalidID"


def test_leaked_interfaces_are_detached_tagged_and_in_the_vpc(world: World) -> None:
    node = world.node()
    tags = {TAG_INSTANCE_ID: node.instance_id, TAG_CLUSTER_NAME: "c1"}
    ours = world.new_eni(node, tags=tags)
    other_cluster = world.new_eni(node, tags={TAG_INSTANCE_ID: "i-gone", TAG_CLUSTER_NAME: "c2"})
    untagged = world.new_eni(node, tags={})
    attached = world.new_eni(node, tags=tags)
    world.provider.attach_interface(attached.interface_id, node.instance_id, 1)

    any_cluster = world.provider.describe_leaked_interfaces(vpc_id=node.vpc_id, owner_tag_key=TAG_INSTANCE_ID)
    assert {e.interface_id for e in any_cluster} == {ours.interface_id, other_cluster.interface_id}
    assert untagged.interface_id not in {e.interface_id for e in any_cluster}
    assert all(e.status == "available" and e.attachment is None for e in any_cluster)
    mine = world.provider.describe_leaked_interfaces(vpc_id=node.vpc_id, owner_tag_key=TAG_INSTANCE_ID,
                                                     required_tags={TAG_CLUSTER_NAME: "c1"})
    assert [e.interface_id for e in mine] == [ours.interface_id]
    assert world.provider.describe_leaked_interfaces(vpc_id="vpc-0123456789abcdef0",
                                                     owner_tag_key=TAG_INSTANCE_ID) == []


def test_describe_interfaces_skips_missing_ids_and_keeps_order(world: World) -> None:
    node = world.node()
    a, b = world.new_eni(node), world.new_eni(node)
    found = world.provider.describe_interfaces([b.interface_id, "eni-0000000000000dead", a.interface_id])
    assert [e.interface_id for e in found] == [b.interface_id, a.interface_id]
    assert world.provider.describe_interfaces([]) == []


# --- errors ------------------------------------------------------------------------------------------------

CODES: list[tuple[str, type[CloudError]]] = [
    ("RequestLimitExceeded", CloudThrottled),
    ("InternalError", CloudServerError),
    ("UnauthorizedOperation", Unauthorized),
    ("AttachmentLimitExceeded", EniLimitExceeded),
    ("PrivateIpAddressLimitExceeded", AddressLimitExceeded),
    ("InsufficientFreeAddressesInSubnet", SubnetFull),
    ("InsufficientCidrBlocks", NoCidrBlock),
    ("InvalidNetworkInterfaceID.NotFound", CloudNotFound),
    ("InvalidParameterValue", CloudInvalidRequest),
]


@pytest.mark.parametrize(("code", "expected"), CODES)
def test_ec2_codes_are_the_same_exception_classes(world: World, code: str,
                                                  expected: type[CloudError]) -> None:
    node = world.node()
    world.fail("AssignPrivateIpAddresses", code, 1)
    with pytest.raises(expected) as refused:
        world.provider.assign_addresses(node.primary_eni_id, 1)
    assert (type(refused.value), refused.value.code, refused.value.action) == (expected, code,
                                                                                "AssignPrivateIpAddresses")
    assert len(world.provider.assign_addresses(node.primary_eni_id, 1)) == 1, "the fault fired once"


def test_retries_through_a_call_runner_use_up_the_faults(world: World) -> None:
    node = world.node()
    retry = RetrySettings(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.002)
    provider = world.retrying_provider(retry)
    before = world.calls("AssignPrivateIpAddresses")
    world.fail("AssignPrivateIpAddresses", "RequestLimitExceeded", 2)
    assert len(provider.assign_addresses(node.primary_eni_id, 2)) == 2
    assert world.calls("AssignPrivateIpAddresses") - before == 3, "two throttled attempts, then the answer"
    world.fail("AssignPrivateIpAddresses", "UnauthorizedOperation", 1)
    with pytest.raises(Unauthorized):
        provider.assign_addresses(node.primary_eni_id, 1)
    assert world.calls("AssignPrivateIpAddresses") - before == 4, "a permanent error is not retried"


# --- where the local cloud differs from real EC2 (the fake follows EC2) ------------------------------------


def test_create_tags_on_an_unknown_interface_is_not_found(world: World) -> None:
    world.local_cloud_differs("CreateTags accepts ids of resources that do not exist")
    with pytest.raises(CloudNotFound) as missing:
        world.provider.create_tags(["eni-0123456789abcdef0"], {"x": "y"})
    assert missing.value.code == "InvalidNetworkInterfaceID.NotFound"


def test_create_with_an_unknown_security_group_is_not_found(world: World) -> None:
    world.local_cloud_differs("CreateNetworkInterface accepts security groups that do not exist")
    node = world.node()
    with pytest.raises(CloudNotFound) as missing:
        world.new_eni(node, security_group_ids=["sg-0123456789abcdef0"])
    assert missing.value.code == "InvalidGroup.NotFound"


def test_attach_to_a_network_card_the_type_lacks_is_refused(world: World) -> None:
    node = world.node("m5.large")  # one network card
    eni = world.new_eni(node)
    with pytest.raises(CloudInvalidRequest):
        world.provider.attach_interface(eni.interface_id, node.instance_id, 1, network_card_index=1)


def test_the_eni_limit_is_per_network_card(world: World) -> None:
    node = world.node("p4d.24xlarge")
    for index in range(1, 15):
        world.provider.attach_interface(world.new_eni(node).interface_id, node.instance_id, index)
    with pytest.raises(EniLimitExceeded):
        world.provider.attach_interface(world.new_eni(node).interface_id, node.instance_id, 15)
