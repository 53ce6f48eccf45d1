"""AwsProvider against the local cloud: every provider method over real boto3 and real HTTP.

EC2 semantics (addresses, prefixes, tags, attachment, subnets' free counts) come from the local cloud;
fixtures are in aws_provider_support.py. Errors and retries are in test_aws_provider_errors.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.aws.aws_provider_support import *  # noqa: F403  (the provider fixtures)
from tests.cloud.aws.aws_provider_support import new_eni
from vpccni.cloud.aws.provider import AwsProvider
from vpccni.cloud.aws.tags import TAG_CLUSTER_NAME, TAG_INSTANCE_ID
from vpccni.cloud.base import InstanceInfo
from vpccni.cloud.observe import InMemoryObserver
from vpccni.errors import CloudNotFound, UnknownInstanceType

# --- the instance ------------------------------------------------------------------------------------


def test_describe_instance(instance: InstanceInfo, node: Any) -> None:
    assert instance.instance_id == node.instance_id
    assert instance.instance_type == "m5.large"
    assert instance.availability_zone == node.availability_zone
    assert (instance.subnet_id, instance.vpc_id) == (node.subnet_id, node.vpc_id)
    assert instance.primary_interface_id == node.primary_eni_id
    assert instance.state == "running"
    assert len(instance.security_group_ids) == 1
    assert [(s.interface_id, s.device_index) for s in instance.interfaces] == [(node.primary_eni_id, 0)]
    assert instance.lowest_free_device_index() == 1


def test_describe_unknown_instance_is_not_found(provider: AwsProvider, node: Any) -> None:
    with pytest.raises(CloudNotFound):
        provider.describe_instance("i-0123456789abcdef0")


def test_describe_instance_type(provider: AwsProvider, localcloud: Any) -> None:
    info = provider.describe_instance_type("m5.large")
    network = info["NetworkInfo"]
    assert isinstance(network, dict)
    assert (network["MaximumNetworkInterfaces"], network["Ipv4AddressesPerInterface"]) == (3, 10)
    with pytest.raises(UnknownInstanceType, match="x9.bogus"):
        provider.describe_instance_type("x9.bogus")


# --- interfaces --------------------------------------------------------------------------------------


def test_instance_interfaces_start_with_the_primary(provider: AwsProvider, node: Any) -> None:
    [primary] = provider.describe_instance_interfaces(node.instance_id)
    assert primary.interface_id == node.primary_eni_id
    assert primary.primary_address == node.primary_ip
    assert primary.mac == node.mac
    assert primary.attachment is not None and primary.attachment.device_index == 0
    assert primary.status == "in-use"


def test_interface_lifecycle(
    provider: AwsProvider, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    tags = {TAG_INSTANCE_ID: instance.instance_id, TAG_CLUSTER_NAME: "c1"}
    eni = new_eni(provider, instance, tags=tags, secondary_address_count=3)
    assert len(eni.secondary_addresses) == 3
    assert eni.primary_address not in eni.secondary_addresses
    assert eni.tag(TAG_INSTANCE_ID) == instance.instance_id and eni.tag(TAG_CLUSTER_NAME) == "c1"
    assert eni.description == f"aws-K8S-{instance.instance_id}"
    assert eni.security_group_ids == instance.security_group_ids
    assert eni.status == "available" and eni.attachment is None
    assert observer.calls()["CreateNetworkInterface"] == 1  # addresses and tags in the same call

    attachment_id = provider.attach_interface(eni.interface_id, instance.instance_id, 1)
    provider.set_delete_on_termination(eni.interface_id, attachment_id)
    enis = provider.describe_instance_interfaces(instance.instance_id)
    assert [e.device_index for e in enis] == [0, 1]
    attached = enis[1]
    assert attached.attachment is not None
    assert attached.attachment.attachment_id == attachment_id
    assert attached.attachment.delete_on_termination is True
    assert provider.describe_instance(instance.instance_id).lowest_free_device_index() == 2

    new = provider.assign_addresses(eni.interface_id, 2)
    assert len(new) == 2 and not set(new) & set(eni.addresses)  # only the new ones come back
    [after] = provider.describe_interfaces([eni.interface_id])
    assert set(after.secondary_addresses) == set(eni.secondary_addresses) | set(new)

    provider.unassign_addresses(eni.interface_id, [new[0], eni.secondary_addresses[0]])
    [after] = provider.describe_interfaces([eni.interface_id])
    assert set(after.secondary_addresses) == (set(eni.secondary_addresses) | set(new)) - {
        new[0],
        eni.secondary_addresses[0],
    }

    assert provider.detach_interface(attachment_id) is True
    [detached] = provider.describe_interfaces([eni.interface_id])
    assert detached.attachment is None or detached.attachment.status in ("detaching", "detached")
    assert provider.delete_interface(eni.interface_id) is True
    # Both are idempotent: the second time says "already gone" instead of failing.
    assert provider.delete_interface(eni.interface_id) is False
    assert provider.detach_interface(attachment_id) is False
    assert provider.describe_interfaces([eni.interface_id]) == []


def test_prefix_delegation(provider: AwsProvider, instance: InstanceInfo) -> None:
    eni = new_eni(provider, instance, prefix_count=1)
    assert len(eni.prefixes) == 1 and eni.prefixes[0].endswith("/28")
    assert eni.secondary_addresses == ()
    new = provider.assign_prefixes(eni.interface_id, 2)
    assert len(new) == 2 and eni.prefixes[0] not in new
    provider.unassign_prefixes(eni.interface_id, [eni.prefixes[0], new[0]])
    [after] = provider.describe_interfaces([eni.interface_id])
    assert after.prefixes == (new[1],)


def test_create_interface_takes_addresses_or_prefixes(provider: AwsProvider, instance: InstanceInfo) -> None:
    with pytest.raises(ValueError, match="secondary_address_count OR prefix_count"):
        new_eni(provider, instance, secondary_address_count=1, prefix_count=1)
    with pytest.raises(ValueError, match="count must be >= 1"):
        provider.assign_addresses(instance.primary_interface_id, 0)


def test_describe_interfaces_skips_missing_ids_and_keeps_order(
    provider: AwsProvider, instance: InstanceInfo
) -> None:
    a = new_eni(provider, instance)
    b = new_eni(provider, instance)
    found = provider.describe_interfaces([b.interface_id, "eni-0000000000000dead", a.interface_id])
    assert [e.interface_id for e in found] == [b.interface_id, a.interface_id]
    assert provider.describe_interfaces([]) == []


def test_leaked_interfaces(provider: AwsProvider, instance: InstanceInfo) -> None:
    ours = new_eni(provider, instance, tags={TAG_INSTANCE_ID: instance.instance_id, TAG_CLUSTER_NAME: "c1"})
    other_cluster = new_eni(provider, instance, tags={TAG_INSTANCE_ID: "i-x", TAG_CLUSTER_NAME: "c2"})
    untagged = new_eni(provider, instance, tags={})
    attached = new_eni(
        provider, instance, tags={TAG_INSTANCE_ID: instance.instance_id, TAG_CLUSTER_NAME: "c1"}
    )
    provider.attach_interface(attached.interface_id, instance.instance_id, 1)

    any_cluster = provider.describe_leaked_interfaces(vpc_id=instance.vpc_id, owner_tag_key=TAG_INSTANCE_ID)
    assert {e.interface_id for e in any_cluster} == {ours.interface_id, other_cluster.interface_id}
    mine = provider.describe_leaked_interfaces(
        vpc_id=instance.vpc_id, owner_tag_key=TAG_INSTANCE_ID, required_tags={TAG_CLUSTER_NAME: "c1"}
    )
    assert [e.interface_id for e in mine] == [ours.interface_id]
    assert untagged.interface_id not in {e.interface_id for e in any_cluster}
    assert provider.describe_leaked_interfaces(vpc_id="vpc-00000000", owner_tag_key=TAG_INSTANCE_ID) == []


def test_create_tags(provider: AwsProvider, instance: InstanceInfo) -> None:
    eni = new_eni(provider, instance, tags={})
    provider.create_tags([eni.interface_id], {"team": "net", TAG_INSTANCE_ID: instance.instance_id})
    [tagged] = provider.describe_interfaces([eni.interface_id])
    assert dict(tagged.tags) == {"team": "net", TAG_INSTANCE_ID: instance.instance_id}


# --- subnets -----------------------------------------------------------------------------------------


def test_describe_subnets(provider: AwsProvider, localcloud: Any, node: Any) -> None:
    vpc, default_subnet, _ = localcloud.default_network()
    small = localcloud.create_subnet(
        vpc, "10.0.16.0/24", az=f"{localcloud.region}b", tags={"kubernetes.io/role/cni": "0"}
    )
    subnets = provider.describe_subnets(vpc_id=vpc.vpc_id)
    assert [s.subnet_id for s in subnets] == [default_subnet.subnet_id, small.subnet_id]  # most free first
    big = subnets[0]
    assert big.cidr == "10.0.0.0/20" and big.tag("kubernetes.io/role/cni") == "1"
    assert 0 < big.available_address_count < 4091  # the node's primary address is taken
    assert subnets[1].available_address_count == 251  # a /24 minus AWS's 5 reserved
    assert [
        s.subnet_id
        for s in provider.describe_subnets(vpc_id=vpc.vpc_id, availability_zone=f"{localcloud.region}b")
    ] == [small.subnet_id]
    assert [s.subnet_id for s in provider.describe_subnets(subnet_ids=[small.subnet_id])] == [small.subnet_id]


def test_subnet_free_count_follows_assignments(provider: AwsProvider, instance: InstanceInfo) -> None:
    [before] = provider.describe_subnets(subnet_ids=[instance.subnet_id])
    new_eni(provider, instance, secondary_address_count=4)
    [after] = provider.describe_subnets(subnet_ids=[instance.subnet_id])
    assert before.available_address_count - after.available_address_count == 5
