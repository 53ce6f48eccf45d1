"""Per-instance-type limits and ENI attachment rules, each asserted as the error code real EC2 returns."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import Network, create_eni, error_code, run_instance
from vpccni.localcloud.ec2.state import unattached_slot_limit


def test_fourth_eni_on_m5_large_is_attachment_limit_exceeded(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "m5.large")  # 3 ENIs max, the primary is one
    for index in (1, 2):
        eni = create_eni(ec2, network.subnet_id)
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=index
        )
    fourth = create_eni(ec2, network.subnet_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(
            NetworkInterfaceId=fourth["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=3
        )
    assert error_code(excinfo) == "AttachmentLimitExceeded"
    assert "m5.large" in excinfo.value.response["Error"]["Message"]
    attached = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}]
    )["NetworkInterfaces"]
    assert len(attached) == 3


def test_the_limit_follows_the_instance_type(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "t3.nano")  # 2 ENIs max
    second = create_eni(ec2, network.subnet_id)
    ec2.attach_network_interface(
        NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    third = create_eni(ec2, network.subnet_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(
            NetworkInterfaceId=third["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=2
        )
    assert error_code(excinfo) == "AttachmentLimitExceeded"


def test_duplicate_device_index_is_invalid_parameter_value(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    first, second = create_eni(ec2, network.subnet_id), create_eni(ec2, network.subnet_id)
    ec2.attach_network_interface(
        NetworkInterfaceId=first["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(
            NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
        )
    assert error_code(excinfo) == "InvalidParameterValue"
    assert "device index '1'" in excinfo.value.response["Error"]["Message"]
    # The first ENI is still the one at index 1 (moto alone would have overwritten it).
    view = {e["NetworkInterfaceId"]: e for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}
    assert view[first["NetworkInterfaceId"]]["Attachment"]["DeviceIndex"] == 1
    assert view[second["NetworkInterfaceId"]]["Status"] == "available"


def test_attaching_an_attached_eni_again_is_in_use(ec2: Any, network: Network) -> None:
    one, two = run_instance(ec2, network.subnet_id), run_instance(ec2, network.subnet_id)
    eni = create_eni(ec2, network.subnet_id)
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=one["InstanceId"], DeviceIndex=1
    )
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=two["InstanceId"], DeviceIndex=1
        )
    assert error_code(excinfo) == "InvalidNetworkInterface.InUse"


def test_deleting_an_attached_eni_is_refused_until_detached(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    eni = create_eni(ec2, network.subnet_id)
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )["AttachmentId"]
    with pytest.raises(ClientError) as excinfo:
        ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert error_code(excinfo) == "InvalidParameterValue"
    assert "currently in use" in excinfo.value.response["Error"]["Message"]

    ec2.detach_network_interface(AttachmentId=attachment)
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    with pytest.raises(ClientError) as excinfo:
        ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
    assert error_code(excinfo) == "InvalidNetworkInterfaceID.NotFound"


def test_the_primary_eni_cannot_be_detached(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    attachment = instance["NetworkInterfaces"][0]["Attachment"]["AttachmentId"]
    with pytest.raises(ClientError) as excinfo:
        ec2.detach_network_interface(AttachmentId=attachment)
    assert error_code(excinfo) == "OperationNotPermitted"


def test_eleventh_address_on_an_m5_large_eni_is_private_ip_address_limit_exceeded(
    ec2: Any, network: Network
) -> None:
    instance = run_instance(ec2, network.subnet_id, "m5.large")  # 10 IPv4 addresses per ENI
    eni_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=9)  # 1 + 9 = 10
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=1)
    assert error_code(excinfo) == "PrivateIpAddressLimitExceeded"
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    assert len(eni["PrivateIpAddresses"]) == 10


def test_an_over_full_unattached_eni_cannot_be_attached_to_a_smaller_type(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "t3.medium")  # 6 addresses per ENI
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=8)  # 9 > 6, fine while unattached
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
        )
    assert error_code(excinfo) == "PrivateIpAddressLimitExceeded"


def test_an_unattached_eni_holds_at_most_the_largest_types_slots(ec2: Any, network: Network) -> None:
    limit = unattached_slot_limit()  # the largest Ipv4AddressesPerInterface in DescribeInstanceTypes
    assert limit >= 50
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=limit)  # primary + limit
    assert error_code(excinfo) == "PrivateIpAddressLimitExceeded"
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=limit - 1)
    assert len(eni["PrivateIpAddresses"]) == limit


def test_unknown_instance_type_is_invalid_parameter_value(ec2: Any, network: Network) -> None:
    with pytest.raises(ClientError) as excinfo:
        run_instance(ec2, network.subnet_id, "x9.bogus")
    assert error_code(excinfo) == "InvalidParameterValue"
    assert "x9.bogus" in excinfo.value.response["Error"]["Message"]
    assert ec2.describe_instances()["Reservations"] == []
