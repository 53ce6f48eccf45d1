"""DeleteOnTermination and TerminateInstances as EC2 does them (moto alone ignores DOT and leaves ENIs
attached to dead instances)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import Network, create_eni, error_code, run_instance


def _enis(ec2: Any) -> dict[str, dict[str, Any]]:
    return {e["NetworkInterfaceId"]: e for e in ec2.describe_network_interfaces()["NetworkInterfaces"]}


def _attach(ec2: Any, eni_id: str, instance_id: str, index: int) -> str:
    attachment: str = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance_id, DeviceIndex=index
    )["AttachmentId"]
    return attachment


def test_terminate_deletes_dot_enis_and_detaches_the_others(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    instance_id = instance["InstanceId"]
    primary = instance["NetworkInterfaces"][0]
    assert primary["Attachment"]["DeleteOnTermination"] is True  # EC2's default for the launch ENI

    kept, deleted = create_eni(ec2, network.subnet_id), create_eni(ec2, network.subnet_id)
    _attach(ec2, kept["NetworkInterfaceId"], instance_id, 1)
    deleted_attachment = _attach(ec2, deleted["NetworkInterfaceId"], instance_id, 2)
    enis = _enis(ec2)
    assert enis[kept["NetworkInterfaceId"]]["Attachment"]["DeleteOnTermination"] is False  # EC2's default
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=deleted["NetworkInterfaceId"],
        Attachment={"AttachmentId": deleted_attachment, "DeleteOnTermination": True},
    )
    assert _enis(ec2)[deleted["NetworkInterfaceId"]]["Attachment"]["DeleteOnTermination"] is True
    attribute = ec2.describe_network_interface_attribute(
        NetworkInterfaceId=deleted["NetworkInterfaceId"], Attribute="attachment"
    )
    assert attribute["Attachment"]["DeleteOnTermination"] is True

    ec2.terminate_instances(InstanceIds=[instance_id])
    enis = _enis(ec2)
    assert primary["NetworkInterfaceId"] not in enis
    assert deleted["NetworkInterfaceId"] not in enis
    survivor = enis[kept["NetworkInterfaceId"]]
    assert survivor["Status"] == "available"
    assert "Attachment" not in survivor
    state = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"][
        "Name"
    ]
    assert state == "terminated"
    ec2.terminate_instances(InstanceIds=[instance_id])  # terminating twice is harmless, as on EC2

    # The survivor's addresses stay taken; the deleted ENIs' addresses are free for reuse.
    reuse = create_eni(ec2, network.subnet_id, PrivateIpAddress=primary["PrivateIpAddress"])
    assert reuse["PrivateIpAddress"] == primary["PrivateIpAddress"]
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, network.subnet_id, PrivateIpAddress=kept["PrivateIpAddress"])
    assert error_code(excinfo) == "InvalidIPAddress.InUse"


def test_launch_eni_may_opt_out_of_delete_on_termination(ec2: Any, network: Network) -> None:
    instance = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": network.subnet_id, "DeleteOnTermination": False}],
    )["Instances"][0]
    primary_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert instance["NetworkInterfaces"][0]["Attachment"]["DeleteOnTermination"] is False
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert _enis(ec2)[primary_id]["Status"] == "available"
    ec2.delete_network_interface(NetworkInterfaceId=primary_id)
    assert primary_id not in _enis(ec2)


def test_delete_on_termination_belongs_to_the_attachment(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    eni = create_eni(ec2, network.subnet_id)
    attachment = _attach(ec2, eni["NetworkInterfaceId"], instance["InstanceId"], 1)
    with pytest.raises(ClientError) as excinfo:
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni["NetworkInterfaceId"],
            Attachment={"AttachmentId": "eni-attach-00000000000000000", "DeleteOnTermination": True},
        )
    assert error_code(excinfo) == "InvalidAttachmentID.NotFound"
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni["NetworkInterfaceId"],
        Attachment={"AttachmentId": attachment, "DeleteOnTermination": True},
    )
    ec2.detach_network_interface(AttachmentId=attachment)
    _attach(ec2, eni["NetworkInterfaceId"], instance["InstanceId"], 1)
    assert _enis(ec2)[eni["NetworkInterfaceId"]]["Attachment"]["DeleteOnTermination"] is False


def test_an_unsupported_launch_form_is_refused_not_half_done(ec2: Any, network: Network) -> None:
    with pytest.raises(ClientError) as excinfo:
        ec2.run_instances(
            ImageId="ami-0123456789abcdef0",
            InstanceType="m5.large",
            MinCount=1,
            MaxCount=1,
            NetworkInterfaces=[
                {"DeviceIndex": 0, "SubnetId": network.subnet_id, "SecondaryPrivateIpAddressCount": 2}
            ],
        )
    assert error_code(excinfo) == "Unsupported"
    assert "SecondaryPrivateIpAddressCount" in excinfo.value.response["Error"]["Message"]
    assert ec2.describe_instances()["Reservations"] == []


def test_an_attached_eni_keeps_its_own_security_groups(ec2: Any, network: Network) -> None:
    """EC2 reports an ENI's own groups; moto also lists its instance's once attached (corrected here):
    custom networking relies on an ENI created with the ENIConfig's groups keeping exactly those."""
    node_sg = ec2.create_security_group(GroupName="node", Description="n", VpcId=network.vpc_id)["GroupId"]
    pods_sg = ec2.create_security_group(GroupName="pods", Description="p", VpcId=network.vpc_id)["GroupId"]
    instance = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=network.subnet_id,
        SecurityGroupIds=[node_sg],
    )["Instances"][0]
    eni = create_eni(ec2, network.subnet_id, Groups=[pods_sg])
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    found = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance["InstanceId"]]}]
    )["NetworkInterfaces"]
    groups = {i["Attachment"]["DeviceIndex"]: [g["GroupId"] for g in i["Groups"]] for i in found}
    assert groups == {0: [node_sg], 1: [pods_sg]}
