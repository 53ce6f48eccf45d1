"""The LocalCloud facade: networks, nodes and scenarios exist in EC2 as a user would see them via boto3."""

from __future__ import annotations

import socket
import urllib.error
from typing import Any

import pytest

import vpccni.localcloud as localcloud_pkg
from tests.cloud.localcloud.test_imds import META, Imds
from vpccni.errors import UnknownInstanceType
from vpccni.localcloud import LatencyProfile, LocalCloud, Node


def tags_of(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def test_default_network_is_created_once_and_tagged_for_subnet_discovery(
    localcloud: LocalCloud, ec2_client: Any
) -> None:
    vpc, subnet, sg = localcloud.default_network()
    assert localcloud.default_network() == (vpc, subnet, sg)
    [ec2_vpc] = ec2_client.describe_vpcs(VpcIds=[vpc.vpc_id])["Vpcs"]
    assert ec2_vpc["CidrBlock"] == vpc.cidr == "10.0.0.0/16"
    [ec2_subnet] = ec2_client.describe_subnets(
        Filters=[{"Name": "tag:kubernetes.io/role/cni", "Values": ["1"]}]
    )["Subnets"]
    assert ec2_subnet["SubnetId"] == subnet.subnet_id
    assert ec2_subnet["AvailabilityZone"] == f"{localcloud.region}a" == subnet.availability_zone
    [ec2_sg] = ec2_client.describe_security_groups(GroupIds=[sg])["SecurityGroups"]
    assert ec2_sg["VpcId"] == vpc.vpc_id


def test_add_node_matches_describe_instances(localcloud: LocalCloud, ec2_client: Any) -> None:
    node = localcloud.add_node("t3.medium", name="worker-a")
    assert localcloud.nodes == [node]
    [inst] = ec2_client.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0]["Instances"]
    primary = next(n for n in inst["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    assert (node.instance_type, node.subnet_id, node.vpc_id) == ("t3.medium", inst["SubnetId"], inst["VpcId"])
    assert (node.primary_eni_id, node.primary_ip, node.mac) == (
        primary["NetworkInterfaceId"],
        primary["PrivateIpAddress"],
        primary["MacAddress"],
    )
    assert node.availability_zone == inst["Placement"]["AvailabilityZone"]
    assert node.region == localcloud.region
    assert tags_of(inst)["Name"] == "worker-a"
    assert Imds(node.imds_endpoint).get(f"{META}/instance-id") == node.instance_id


def test_add_node_into_a_chosen_subnet_and_security_groups(localcloud: LocalCloud, ec2_client: Any) -> None:
    vpc = localcloud.create_vpc("192.168.0.0/16")
    subnet = localcloud.create_subnet(
        vpc, "192.168.8.0/24", az=f"{localcloud.region}b", tags={"team": "blue"}
    )
    sgs = [localcloud.create_security_group(vpc, "a"), localcloud.create_security_group(vpc, "b")]
    node = localcloud.add_node("m5.large", subnet=subnet, security_groups=sgs)
    assert (node.vpc_id, node.subnet_id, node.availability_zone) == (
        vpc.vpc_id,
        subnet.subnet_id,
        subnet.availability_zone,
    )
    assert node.primary_ip.startswith("192.168.8.")
    [ec2_subnet] = ec2_client.describe_subnets(SubnetIds=[subnet.subnet_id])["Subnets"]
    assert tags_of(ec2_subnet) == {"team": "blue"} and subnet.tags == (("team", "blue"),)
    [eni] = ec2_client.describe_network_interfaces(NetworkInterfaceIds=[node.primary_eni_id])[
        "NetworkInterfaces"
    ]
    assert sorted(g["GroupId"] for g in eni["Groups"]) == sorted(sgs)
    assert sorted(Imds(node.imds_endpoint).eni_field(node.mac, "security-group-ids").splitlines()) == sorted(
        sgs
    )


def test_scenario_gives_each_node_its_own_imds(localcloud: LocalCloud) -> None:
    nodes = localcloud.scenario(["m5.large", "t3.medium", "c5.18xlarge"])
    assert [n.instance_type for n in nodes] == ["m5.large", "t3.medium", "c5.18xlarge"]
    assert len({n.imds_endpoint for n in nodes}) == 3
    for node in nodes:
        imds = Imds(node.imds_endpoint)
        assert imds.get(f"{META}/instance-id") == node.instance_id
        assert imds.get(f"{META}/instance-type") == node.instance_type
    assert localcloud.describe()["nodes"] == [n.to_dict() for n in nodes]


def test_unknown_instance_type_is_a_clear_error_and_creates_nothing(
    localcloud: LocalCloud, ec2_client: Any
) -> None:
    with pytest.raises(UnknownInstanceType, match="'x9.bogus'"):
        localcloud.add_node("x9.bogus")
    with pytest.raises(UnknownInstanceType, match="'m5.hyuge'"):
        localcloud.scenario(["m5.large", "m5.hyuge"])  # checked before the first node starts
    assert localcloud.nodes == []
    assert ec2_client.describe_instances()["Reservations"] == []


def test_imds_handle_sets_lag_and_stale(localcloud: LocalCloud, localcloud_node: Any) -> None:
    node: Node = localcloud_node("m5.large")
    imds = localcloud.imds(node)
    assert imds is localcloud.imds(node.instance_id)
    imds.set_lag(1.5)
    imds.set_stale(3)
    assert (imds.lag_s, imds.stale_s) == (1.5, 3.0)
    with pytest.raises(KeyError, match="i-nothere"):
        localcloud.imds("i-nothere")


def test_imds_served_on_a_handed_over_socket_shares_the_node_history(
    localcloud: LocalCloud, localcloud_node: Any, ec2_client: Any
) -> None:
    node = localcloud_node("m5.large")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    extra = localcloud.serve_imds(node, sock)
    assert extra.endpoint != node.imds_endpoint
    ec2_client.assign_private_ip_addresses(
        NetworkInterfaceId=node.primary_eni_id, SecondaryPrivateIpAddressCount=3
    )
    both = [Imds(e).eni_field(node.mac, "local-ipv4s") for e in (node.imds_endpoint, extra.endpoint)]
    assert both[0] == both[1] and len(both[0].splitlines()) == 4


def test_stop_closes_every_endpoint() -> None:
    with LocalCloud() as cloud:
        node = cloud.add_node("m5.large")
        assert Imds(node.imds_endpoint).get(f"{META}/instance-id") == node.instance_id
        client = cloud.client(retries={"total_max_attempts": 1})
    with pytest.raises(urllib.error.URLError):
        Imds(node.imds_endpoint)
    with pytest.raises(Exception, match="(?i)connect"):
        client.describe_vpcs()


def test_add_node_needs_a_started_cloud() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        LocalCloud().add_node("m5.large")


def test_realistic_profile_gives_imds_a_default_lag() -> None:
    with LocalCloud(profile="realistic") as cloud:
        node = cloud.add_node("m5.large")
        assert cloud.imds(node).lag_s == LatencyProfile.realistic().imds_lag_s > 0


def test_package_exports_the_facade_and_the_ec2_layer() -> None:
    for name in ("LocalCloud", "Node", "Vpc", "Subnet", "Ec2Server", "ImdsServer", "InstanceView", "EniView"):
        assert hasattr(localcloud_pkg, name), name
        assert name in localcloud_pkg.__all__
