"""Prefix delegation: aligned, unique /28s that take address slots, show in describes, count 16
addresses each, and run out as InsufficientCidrBlocks (also when a fragmented subnet still has addresses)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import Network, add_subnet, create_eni, error_code, run_instance


def _describe(ec2: Any, eni_id: str) -> dict[str, Any]:
    eni: dict[str, Any] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][
        0
    ]
    return eni


def _available(ec2: Any, subnet_id: str) -> int:
    return int(ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailableIpAddressCount"])


def test_prefixes_are_aligned_unique_clear_of_reserved_blocks_and_counted(ec2: Any, network: Network) -> None:
    subnet_id = add_subnet(
        ec2, network, "10.0.4.0/25"
    )  # 8 blocks; the first and last hold reserved addresses
    eni = create_eni(ec2, subnet_id, PrivateIpAddress="10.0.4.5", Ipv4PrefixCount=6)
    prefixes = sorted((p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"]), key=lambda p: ipaddress.IPv4Network(p))
    assert prefixes == [f"10.0.4.{16 * n}/28" for n in range(1, 7)]
    assert _available(ec2, subnet_id) == 123 - 1 - 6 * 16

    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4PrefixCount=1)
    assert error_code(excinfo) == "InsufficientCidrBlocks"

    # The 26 addresses left are outside every prefix; once they are gone the subnet is full.
    answer = ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=26
    )
    delegated = [ipaddress.IPv4Network(p) for p in prefixes]
    for item in answer["AssignedPrivateIpAddresses"]:
        address = ipaddress.IPv4Address(item["PrivateIpAddress"])
        assert not any(address in block for block in delegated)
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
        )
    assert error_code(excinfo) == "InsufficientFreeAddressesInSubnet"


def test_a_fragmented_subnet_has_addresses_but_no_cidr_block(ec2: Any, network: Network) -> None:
    subnet_id = add_subnet(ec2, network, "10.0.5.0/26")  # usable blocks: .16/28 and .32/28 only
    create_eni(ec2, subnet_id, PrivateIpAddress="10.0.5.20")
    eni = create_eni(ec2, subnet_id, PrivateIpAddress="10.0.5.40")
    assert _available(ec2, subnet_id) > 0
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4PrefixCount=1)
    assert error_code(excinfo) == "InsufficientCidrBlocks"
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, subnet_id, Ipv4PrefixCount=1)
    assert error_code(excinfo) == "InsufficientCidrBlocks"


def test_prefixes_take_the_same_slots_as_addresses(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "m5.large")  # 10 slots per ENI
    eni_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=9)  # primary + 9 prefixes
    for extra in ({"Ipv4PrefixCount": 1}, {"SecondaryPrivateIpAddressCount": 1}):
        with pytest.raises(ClientError) as excinfo:
            ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, **extra)
        assert error_code(excinfo) == "PrivateIpAddressLimitExceeded"
    assert len(_describe(ec2, eni_id)["Ipv4Prefixes"]) == 9


def test_prefixes_show_in_every_describe(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    eni = create_eni(ec2, network.subnet_id, Ipv4PrefixCount=1)
    created = [p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"]]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    answer = ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4PrefixCount=2)
    assigned = [p["Ipv4Prefix"] for p in answer["AssignedIpv4Prefixes"]]
    assert len(assigned) == 2
    assert answer["AssignedPrivateIpAddresses"] == []
    expected = set(created + assigned)
    assert len(expected) == 3

    described = {p["Ipv4Prefix"] for p in _describe(ec2, eni["NetworkInterfaceId"])["Ipv4Prefixes"]}
    assert described == expected
    reservation = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]
    by_index = {n["Attachment"]["DeviceIndex"]: n for n in reservation["Instances"][0]["NetworkInterfaces"]}
    assert {p["Ipv4Prefix"] for p in by_index[1]["Ipv4Prefixes"]} == expected
    assert by_index[0].get("Ipv4Prefixes", []) == []


@pytest.mark.parametrize(
    "prefix",
    [
        "10.0.1.20/28",  # not aligned
        "10.0.1.32/27",  # not a /28
        "10.0.1.0/28",  # holds the subnet's reserved addresses
        "10.0.9.16/28",  # outside the subnet
        "10.0.1.48",  # not a prefix
    ],
)
def test_bad_explicit_prefixes_are_refused(ec2: Any, network: Network, prefix: str) -> None:
    eni = create_eni(ec2, network.subnet_id, PrivateIpAddress="10.0.1.200")
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4Prefixes=[prefix])
    assert error_code(excinfo) == "InvalidParameterValue"
    assert _describe(ec2, eni["NetworkInterfaceId"]).get("Ipv4Prefixes", []) == []


def test_an_explicit_prefix_must_not_overlap_what_is_taken(ec2: Any, network: Network) -> None:
    first = create_eni(
        ec2, network.subnet_id, PrivateIpAddress="10.0.1.70", Ipv4Prefixes=[{"Ipv4Prefix": "10.0.1.32/28"}]
    )
    second = create_eni(ec2, network.subnet_id, PrivateIpAddress="10.0.1.200")
    for taken in ("10.0.1.32/28", "10.0.1.64/28"):  # another ENI's prefix; a block holding 10.0.1.70
        with pytest.raises(ClientError) as excinfo:
            ec2.assign_private_ip_addresses(
                NetworkInterfaceId=second["NetworkInterfaceId"], Ipv4Prefixes=[taken]
            )
        assert error_code(excinfo) == "InvalidParameterValue"
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=second["NetworkInterfaceId"], PrivateIpAddresses=["10.0.1.40"]
        )
    assert error_code(excinfo) == "PrivateIpAddressInUse"  # an address inside a delegated prefix is taken
    assert [p["Ipv4Prefix"] for p in first["Ipv4Prefixes"]] == ["10.0.1.32/28"]


def test_unassigned_prefixes_are_free_again(ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id, Ipv4PrefixCount=2)
    prefixes = [p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"]]
    before = _available(ec2, network.subnet_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.unassign_private_ip_addresses(
            NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4Prefixes=["10.0.1.240/28"]
        )
    assert error_code(excinfo) == "InvalidParameterValue"

    ec2.unassign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], Ipv4Prefixes=[prefixes[0]]
    )
    assert [p["Ipv4Prefix"] for p in _describe(ec2, eni["NetworkInterfaceId"])["Ipv4Prefixes"]] == [
        prefixes[1]
    ]
    assert _available(ec2, network.subnet_id) == before + 16
    other = create_eni(ec2, network.subnet_id, Ipv4Prefixes=[{"Ipv4Prefix": prefixes[0]}])
    assert [p["Ipv4Prefix"] for p in other["Ipv4Prefixes"]] == [prefixes[0]]


def test_deleting_an_eni_frees_its_prefixes(ec2: Any, network: Network) -> None:
    before = _available(ec2, network.subnet_id)
    eni = create_eni(ec2, network.subnet_id, Ipv4PrefixCount=3)
    assert _available(ec2, network.subnet_id) == before - 1 - 48
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert _available(ec2, network.subnet_id) == before
