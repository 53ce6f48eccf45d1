"""The IMDSv2 client against a node of the full local cloud: IMDS built from EC2 state agrees with EC2.

Each typed helper is compared with what EC2 says (through AwsProvider, the path ipamd uses), before
and after the instance gains an interface with secondary addresses and one with prefixes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cloud.aws.aws_provider_support import *  # noqa: F403  (the provider fixtures)
from tests.cloud.aws.aws_provider_support import new_eni
from vpccni.cloud.aws.imds import ImdsClient, ImdsInterface, ImdsSettings
from vpccni.cloud.aws.provider import AwsProvider
from vpccni.cloud.base import InstanceInfo, NetworkInterface
from vpccni.localcloud.cloud import LocalCloud


def as_imds(eni: NetworkInterface, subnet_cidr: str, vpc_cidrs: tuple[str, ...]) -> ImdsInterface:
    """What IMDS should show for an attached interface EC2 describes."""
    assert eni.attachment is not None
    return ImdsInterface(
        mac=eni.mac,
        device_number=eni.attachment.device_index,
        interface_id=eni.interface_id,
        subnet_id=eni.subnet_id,
        subnet_cidr=subnet_cidr,
        vpc_id=eni.vpc_id,
        vpc_cidrs=vpc_cidrs,
        security_group_ids=eni.security_group_ids,
        local_ipv4s=eni.addresses,
        ipv4_prefixes=eni.prefixes,
    )


def test_identity_matches_the_node(node: Any) -> None:
    imds = ImdsClient(ImdsSettings(endpoint=node.imds_endpoint))
    identity = imds.identity()
    assert identity.instance_id == node.instance_id
    assert identity.instance_type == node.instance_type == imds.instance_type()
    assert identity.availability_zone == node.availability_zone == imds.availability_zone()
    assert identity.region == node.region == imds.region()
    assert identity.local_ipv4 == node.primary_ip == imds.local_ipv4()
    assert identity.mac == node.mac == imds.mac()


def test_interfaces_agree_with_ec2(
    provider: AwsProvider, instance: InstanceInfo, node: Any, localcloud: Any
) -> None:
    with_addresses = new_eni(provider, instance, secondary_address_count=3)
    with_prefixes = new_eni(provider, instance, prefix_count=2)
    provider.attach_interface(with_addresses.interface_id, instance.instance_id, 1)
    provider.attach_interface(with_prefixes.interface_id, instance.instance_id, 2)
    provider.assign_addresses(instance.primary_interface_id, 2)

    [subnet] = provider.describe_subnets(subnet_ids=[instance.subnet_id])
    vpc, _, _ = localcloud.default_network()
    ec2_view = provider.describe_instance_interfaces(instance.instance_id)
    expected = [as_imds(e, subnet.cidr, (vpc.cidr,)) for e in ec2_view]

    imds = ImdsClient(ImdsSettings(endpoint=node.imds_endpoint))
    seen = imds.interfaces()
    # Address order within an interface is IMDS's business; the primary comes first in both.
    assert [i.local_ipv4s[0] for i in seen] == [e.local_ipv4s[0] for e in expected]

    def normalise(i: ImdsInterface) -> ImdsInterface:
        return dataclasses.replace(
            i, local_ipv4s=tuple(sorted(i.local_ipv4s)), ipv4_prefixes=tuple(sorted(i.ipv4_prefixes))
        )

    assert [normalise(i) for i in seen] == [normalise(e) for e in expected]
    assert [i.device_number for i in seen] == [0, 1, 2]
    assert len(seen[0].local_ipv4s) == 3 and len(seen[1].local_ipv4s) == 4 and len(seen[2].ipv4_prefixes) == 2
    assert seen[0].ipv4_prefixes == () and seen[1].ipv4_prefixes == ()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clocked_cloud() -> Iterator[tuple[LocalCloud, FakeClock]]:
    clock = FakeClock()
    with LocalCloud(imds_clock=clock) as cloud:
        yield cloud, clock


def test_token_expiry_on_the_local_cloud(clocked_cloud: tuple[LocalCloud, FakeClock]) -> None:
    cloud, server_clock = clocked_cloud
    node = cloud.add_node("t3.medium")
    client_clock = FakeClock()
    imds = ImdsClient(
        ImdsSettings(endpoint=node.imds_endpoint, token_ttl_s=300, refresh_margin_s=60), clock=client_clock
    )
    assert imds.instance_id() == node.instance_id
    # Planned renewal: the client's own clock says the token is about to expire.
    client_clock.now += 241
    assert imds.instance_type() == "t3.medium"
    assert imds.token_fetches == 2
    # Unplanned: the server's clock ran past the new token's life while the client's did not.
    server_clock.now += 301
    assert imds.mac() == node.mac
    assert imds.token_fetches == 3
