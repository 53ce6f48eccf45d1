"""Address semantics: never reserved, unique across a subnet, explicit addresses checked, full subnets
fail promptly, AssignPrivateIpAddresses answers only what it assigned."""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import NO_RETRIES, Network, add_subnet, create_eni, error_code, run_instance
from vpccni.localcloud.ec2.server import Ec2Server


def _all_addresses(ec2: Any, subnet_id: str) -> list[str]:
    enis = ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet_id]}])
    return [a["PrivateIpAddress"] for e in enis["NetworkInterfaces"] for a in e["PrivateIpAddresses"]]


def _available(ec2: Any, subnet_id: str) -> int:
    return int(ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]["AvailableIpAddressCount"])


@pytest.mark.timeout(20)
def test_a_small_subnet_fills_with_its_usable_addresses_only_then_refuses(ec2: Any, network: Network) -> None:
    subnet_id = add_subnet(ec2, network, "10.0.2.0/28")  # .0-.3 and .15 are AWS's; 11 usable
    eni = create_eni(ec2, subnet_id)
    assert _available(ec2, subnet_id) == 10
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=10
    )
    taken = _all_addresses(ec2, subnet_id)
    assert sorted(taken, key=ipaddress.IPv4Address) == [f"10.0.2.{n}" for n in range(4, 15)]
    assert _available(ec2, subnet_id) == 0
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
        )
    assert error_code(excinfo) == "InsufficientFreeAddressesInSubnet"
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, subnet_id)
    assert error_code(excinfo) == "InsufficientFreeAddressesInSubnet"
    with pytest.raises(ClientError) as excinfo:
        run_instance(ec2, subnet_id)
    assert error_code(excinfo) == "InsufficientFreeAddressesInSubnet"


@pytest.mark.timeout(20)
def test_asking_a_slash_28_for_20_addresses_fails_promptly(ec2: Any, network: Network) -> None:
    subnet_id = add_subnet(ec2, network, "10.0.3.0/28")
    instance = run_instance(ec2, subnet_id, "c5.18xlarge")  # 50 addresses per ENI: the subnet is the limit
    eni_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=20)
    assert error_code(excinfo) == "InsufficientFreeAddressesInSubnet"
    assert _all_addresses(ec2, subnet_id) == [instance["PrivateIpAddress"]]  # nothing half-assigned


def test_addresses_are_unique_across_a_subnet_under_many_enis(ec2: Any, network: Network) -> None:
    instances = [run_instance(ec2, network.subnet_id) for _ in range(2)]
    enis = [create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=4) for _ in range(20)]
    for eni in enis:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=5
        )
    taken = _all_addresses(ec2, network.subnet_id)
    assert len(taken) == 2 + 20 * 10
    assert len(set(taken)) == len(taken)
    subnet = ipaddress.IPv4Network("10.0.1.0/24")
    reserved = {str(subnet.network_address + n) for n in range(4)} | {str(subnet.broadcast_address)}
    assert all(ipaddress.IPv4Address(a) in subnet for a in taken)
    assert not reserved & set(taken)
    assert _available(ec2, network.subnet_id) == 251 - len(taken)
    assert {i["PrivateIpAddress"] for i in instances} <= set(taken)


def test_concurrent_assignments_stay_unique(ec2_server: Ec2Server, ec2: Any, network: Network) -> None:
    enis = [create_eni(ec2, network.subnet_id)["NetworkInterfaceId"] for _ in range(8)]
    failures: list[BaseException] = []

    def assign(eni_id: str) -> None:
        client = ec2_server.client(**NO_RETRIES)
        try:
            for _ in range(10):
                client.assign_private_ip_addresses(
                    NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=2
                )
        except BaseException as error:  # reported below: a thread's exception is otherwise lost
            failures.append(error)

    threads = [threading.Thread(target=assign, args=(eni_id,)) for eni_id in enis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    taken = _all_addresses(ec2, network.subnet_id)
    assert len(taken) == 8 * 21
    assert len(set(taken)) == len(taken)


def test_launching_several_instances_gives_each_its_own_primary(ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=20)
    launched = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="t3.medium",
        MinCount=4,
        MaxCount=4,
        SubnetId=network.subnet_id,
    )["Instances"]
    primaries = [i["PrivateIpAddress"] for i in launched]
    assert len(set(primaries)) == 4
    assert not set(primaries) & {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]}


def test_assign_answers_only_the_new_addresses(ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=2)
    before = {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]}
    answer = ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=3
    )
    new = [a["PrivateIpAddress"] for a in answer["AssignedPrivateIpAddresses"]]
    assert len(new) == 3
    assert not before & set(new)
    now = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])[
        "NetworkInterfaces"
    ][0]
    assert {a["PrivateIpAddress"] for a in now["PrivateIpAddresses"]} == before | set(new)


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("10.9.9.9", "InvalidParameterValue"),  # outside the subnet
        ("10.0.1.1", "InvalidParameterValue"),  # the VPC router: reserved
        ("10.0.1.3", "InvalidParameterValue"),  # reserved
        ("10.0.1.255", "InvalidParameterValue"),  # broadcast: reserved
        ("not-an-ip", "InvalidParameterValue"),
    ],
)
def test_explicit_addresses_outside_or_reserved_are_refused(
    ec2: Any, network: Network, address: str, code: str
) -> None:
    eni = create_eni(ec2, network.subnet_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId=eni["NetworkInterfaceId"], PrivateIpAddresses=[address]
        )
    assert error_code(excinfo) == code
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, network.subnet_id, PrivateIpAddress=address)
    assert error_code(excinfo) == code


def test_an_explicit_address_taken_elsewhere_is_in_use(ec2: Any, network: Network) -> None:
    holder = create_eni(
        ec2, network.subnet_id, PrivateIpAddress="10.0.1.50", SecondaryPrivateIpAddressCount=1
    )
    secondary = holder["PrivateIpAddresses"][1]["PrivateIpAddress"]
    other = create_eni(ec2, network.subnet_id)
    for taken in ("10.0.1.50", secondary):
        with pytest.raises(ClientError) as excinfo:
            ec2.assign_private_ip_addresses(
                NetworkInterfaceId=other["NetworkInterfaceId"], PrivateIpAddresses=[taken]
            )
        assert error_code(excinfo) == "PrivateIpAddressInUse"
        with pytest.raises(ClientError) as excinfo:
            create_eni(ec2, network.subnet_id, PrivateIpAddress=taken)
        assert error_code(excinfo) == "InvalidIPAddress.InUse"


def test_allow_reassignment_moves_a_secondary_address(ec2: Any, network: Network) -> None:
    holder = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=1)
    moving = holder["PrivateIpAddresses"][1]["PrivateIpAddress"]
    taker = create_eni(ec2, network.subnet_id)
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=taker["NetworkInterfaceId"], PrivateIpAddresses=[moving], AllowReassignment=True
    )
    owners = ec2.describe_network_interfaces(
        Filters=[{"Name": "addresses.private-ip-address", "Values": [moving]}]
    )["NetworkInterfaces"]
    assert [e["NetworkInterfaceId"] for e in owners] == [taker["NetworkInterfaceId"]]


def test_unassign_checks_the_addresses_belong_to_the_eni(ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=2)
    primary = eni["PrivateIpAddress"]
    secondary = eni["PrivateIpAddresses"][1]["PrivateIpAddress"]
    other = create_eni(ec2, network.subnet_id)["PrivateIpAddress"]
    held = {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]} | {other}
    unassigned = next(f"10.0.1.{n}" for n in range(4, 255) if f"10.0.1.{n}" not in held)
    for wrong in (other, unassigned, primary):
        with pytest.raises(ClientError) as excinfo:
            ec2.unassign_private_ip_addresses(
                NetworkInterfaceId=eni["NetworkInterfaceId"], PrivateIpAddresses=[wrong]
            )
        assert error_code(excinfo) == "InvalidParameterValue"

    ec2.unassign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], PrivateIpAddresses=[secondary]
    )
    now = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])[
        "NetworkInterfaces"
    ][0]
    assert secondary not in {a["PrivateIpAddress"] for a in now["PrivateIpAddresses"]}
    # Released means reusable: another ENI can now take exactly that address.
    reuse = create_eni(ec2, network.subnet_id, PrivateIpAddress=secondary)
    assert reuse["PrivateIpAddress"] == secondary


def test_assign_to_an_unknown_eni_is_not_found(ec2: Any, network: Network) -> None:
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId="eni-0000000000000dead", SecondaryPrivateIpAddressCount=1
        )
    assert error_code(excinfo) == "InvalidNetworkInterfaceID.NotFound"
