"""In-process views and listeners (what the IMDS and the dataplane follow), and server isolation."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import NO_RETRIES, Network, create_eni, error_code, run_instance
from vpccni.errors import CloudNotFound
from vpccni.localcloud.ec2.server import Ec2Server


def test_instance_view_follows_ec2(ec2_server: Ec2Server, ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "m5.large")
    instance_id = instance["InstanceId"]
    eni = create_eni(ec2, network.subnet_id, Ipv4PrefixCount=1, Description="aws-K8S-i")
    ec2.create_tags(Resources=[eni["NetworkInterfaceId"]], Tags=[{"Key": "node", "Value": "a"}])
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance_id, DeviceIndex=1
    )
    assigned = ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=2
    )

    view = ec2_server.instance_view(instance_id)
    assert (view.instance_type, view.state, view.region, view.subnet_id) == (
        "m5.large",
        "running",
        "us-west-2",
        network.subnet_id,
    )
    assert [e.device_index for e in view.enis] == [0, 1]
    assert view.primary_eni.private_ips == (instance["PrivateIpAddress"],)
    assert view.primary_eni.delete_on_termination is True
    second = view.enis[1]
    new = tuple(a["PrivateIpAddress"] for a in assigned["AssignedPrivateIpAddresses"])
    assert second.private_ips == (eni["PrivateIpAddress"], *new)
    assert second.ipv4_prefixes == tuple(p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"])
    assert (second.subnet_cidr, second.vpc_cidrs, second.mac) == (
        "10.0.1.0/24",
        ("10.0.0.0/16",),
        eni["MacAddress"],
    )
    assert (second.status, second.attachment_status, second.instance_id) == (
        "in-use",
        "attached",
        instance_id,
    )
    assert second.description == "aws-K8S-i"
    assert ("node", "a") in second.tags
    assert second.security_group_ids == tuple(sorted(g["GroupId"] for g in eni["Groups"]))

    assert [v.eni_id for v in ec2_server.eni_views(instance_id=instance_id)] == sorted(
        e.eni_id for e in view.enis
    )
    ec2.terminate_instances(InstanceIds=[instance_id])
    after = ec2_server.instance_view(instance_id)
    assert (after.state, after.enis) == ("terminated", ())
    (loose,) = ec2_server.eni_views()
    assert (loose.eni_id, loose.status, loose.instance_id, loose.device_index) == (
        eni["NetworkInterfaceId"],
        "available",
        None,
        None,
    )


def test_an_unknown_instance_is_cloud_not_found(ec2_server: Ec2Server) -> None:
    with pytest.raises(CloudNotFound) as excinfo:
        ec2_server.instance_view("i-0000000000000dead")
    assert excinfo.value.code == "InvalidInstanceID.NotFound"


def test_listeners_hear_successful_mutations_under_the_lock(
    ec2_server: Ec2Server, ec2: Any, network: Network
) -> None:
    heard: list[tuple[str, bool]] = []

    def listener(action: str) -> None:
        # Another thread cannot take the state lock while a listener runs: the snapshot is consistent.
        other: list[bool] = []
        probe = threading.Thread(target=lambda: other.append(ec2_server.lock.acquire(blocking=False)))
        probe.start()
        probe.join()
        heard.append((action, other[0]))

    ec2_server.add_listener(listener)
    eni = create_eni(ec2, network.subnet_id)
    ec2.describe_network_interfaces()
    with pytest.raises(ClientError):
        ec2.assign_private_ip_addresses(
            NetworkInterfaceId="eni-0000000000000dead", SecondaryPrivateIpAddressCount=1
        )
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
    )
    assert heard == [("CreateNetworkInterface", False), ("AssignPrivateIpAddresses", False)]


def test_a_failing_listener_does_not_fail_the_call(ec2_server: Ec2Server, ec2: Any, network: Network) -> None:
    def broken(action: str) -> None:
        raise RuntimeError("listener bug")

    ec2_server.add_listener(broken)
    eni = create_eni(ec2, network.subnet_id)
    assert eni["NetworkInterfaceId"] in {v.eni_id for v in ec2_server.eni_views()}


def test_servers_in_one_process_do_not_share_state(ec2: Any, network: Network) -> None:
    with Ec2Server() as other:
        client = other.client(**NO_RETRIES)
        assert network.vpc_id not in {v["VpcId"] for v in client.describe_vpcs()["Vpcs"]}
        client.create_vpc(CidrBlock="10.50.0.0/16")
    assert "10.50.0.0/16" not in {v["CidrBlock"] for v in ec2.describe_vpcs()["Vpcs"]}


def test_a_client_signing_for_another_region_is_refused(ec2_server: Ec2Server) -> None:
    import boto3

    stranger = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    ).client("ec2", endpoint_url=ec2_server.endpoint)
    with pytest.raises(ClientError) as excinfo:
        stranger.describe_vpcs()
    assert error_code(excinfo) == "AuthFailure"
    assert "us-west-2" in excinfo.value.response["Error"]["Message"]
