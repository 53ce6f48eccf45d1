"""Each node's IMDS against real EC2 state: ENIs, addresses and prefixes changed through boto3 show up
(and disappear) at every IMDS path; tokens are enforced; lag and stale modes hold end to end.

Uses the project's own pytest fixtures (``localcloud``, ``ec2_client``, ``localcloud_node``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from vpccni.localcloud import LocalCloud, Node

META = "/latest/meta-data"


class Imds:
    """A minimal IMDSv2 client (token, then GETs), as an SDK or ipamd uses it."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        req = urllib.request.Request(
            f"{endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            self.token = resp.read().decode()

    def status(self, path: str, token: str | None = "") -> int:
        headers = (
            {"X-aws-ec2-metadata-token": self.token if token == "" else token} if token is not None else {}
        )
        try:
            with urllib.request.urlopen(
                urllib.request.Request(f"{self.endpoint}{path}", headers=headers), timeout=5
            ):
                return 200
        except urllib.error.HTTPError as err:
            return err.code

    def get(self, path: str) -> str:
        req = urllib.request.Request(
            f"{self.endpoint}{path}", headers={"X-aws-ec2-metadata-token": self.token}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            return str(resp.read().decode())

    def lines(self, path: str) -> list[str]:
        return self.get(path).splitlines()

    def macs(self) -> list[str]:
        return [m.rstrip("/") for m in self.lines(f"{META}/network/interfaces/macs/")]

    def eni_field(self, mac: str, field: str) -> str:
        return self.get(f"{META}/network/interfaces/macs/{mac}/{field}")


def describe_eni(ec2: Any, eni_id: str) -> dict[str, Any]:
    enis: list[dict[str, Any]] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])[
        "NetworkInterfaces"
    ]
    return enis[0]


def ec2_ips(eni: dict[str, Any]) -> list[str]:
    addrs = eni["PrivateIpAddresses"]
    return [a["PrivateIpAddress"] for a in addrs if a.get("Primary")] + [
        a["PrivateIpAddress"] for a in addrs if not a.get("Primary")
    ]


def secondary_eni(cloud: LocalCloud, ec2: Any, node: Node, **create: Any) -> dict[str, Any]:
    vpc, subnet, sg = cloud.default_network()
    sg2 = cloud.create_security_group(vpc, "second")
    eni = ec2.create_network_interface(SubnetId=subnet.subnet_id, Groups=[sg, sg2], **create)[
        "NetworkInterface"
    ]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=node.instance_id, DeviceIndex=1
    )
    return describe_eni(ec2, eni["NetworkInterfaceId"])


def test_instance_paths_match_ec2(localcloud: LocalCloud, ec2_client: Any, localcloud_node: Any) -> None:
    node = localcloud_node("m5.large")
    imds = Imds(node.imds_endpoint)
    inst = ec2_client.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0]["Instances"][0]
    assert imds.get(f"{META}/instance-id") == inst["InstanceId"]
    assert imds.get(f"{META}/instance-type") == "m5.large"
    assert imds.get(f"{META}/placement/availability-zone") == inst["Placement"]["AvailabilityZone"]
    assert imds.get(f"{META}/placement/region") == localcloud.region
    assert imds.get(f"{META}/local-ipv4") == inst["PrivateIpAddress"]
    primary = next(n for n in inst["NetworkInterfaces"] if n["Attachment"]["DeviceIndex"] == 0)
    assert imds.get(f"{META}/mac") == primary["MacAddress"]
    assert imds.macs() == [primary["MacAddress"]]
    assert {"instance-id", "instance-type", "local-ipv4", "mac", "network/", "placement/"} <= set(
        imds.lines(f"{META}/")
    )
    assert imds.lines(f"{META}/placement/") == ["availability-zone", "region"]


def test_every_eni_path_follows_ec2(localcloud: LocalCloud, ec2_client: Any, localcloud_node: Any) -> None:
    node = localcloud_node("m5.large")
    vpc, subnet, _ = localcloud.default_network()
    ec2_client.associate_vpc_cidr_block(VpcId=vpc.vpc_id, CidrBlock="10.1.0.0/16")
    eni = secondary_eni(localcloud, ec2_client, node, SecondaryPrivateIpAddressCount=2)
    eni_id, mac = eni["NetworkInterfaceId"], eni["MacAddress"]
    ec2_client.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=2)
    ec2_client.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=2)
    eni = describe_eni(ec2_client, eni_id)
    imds = Imds(node.imds_endpoint)

    assert imds.macs() == [node.mac, mac]  # device-index order
    assert "ipv4-prefix" in imds.lines(f"{META}/network/interfaces/macs/{mac}/")
    assert imds.eni_field(mac, "device-number") == "1"
    assert imds.eni_field(node.mac, "device-number") == "0"
    assert imds.eni_field(mac, "interface-id") == eni_id
    assert imds.eni_field(mac, "subnet-id") == subnet.subnet_id
    assert imds.eni_field(mac, "subnet-ipv4-cidr-block") == subnet.cidr
    assert imds.eni_field(mac, "vpc-id") == vpc.vpc_id
    assert imds.eni_field(mac, "vpc-ipv4-cidr-blocks").splitlines() == ["10.0.0.0/16", "10.1.0.0/16"]
    assert sorted(imds.eni_field(mac, "security-group-ids").splitlines()) == sorted(
        g["GroupId"] for g in eni["Groups"]
    )
    local_ipv4s = imds.eni_field(mac, "local-ipv4s").splitlines()
    assert local_ipv4s[0] == eni["PrivateIpAddress"]  # primary first
    assert sorted(local_ipv4s) == sorted(ec2_ips(eni)) and len(local_ipv4s) == 5
    prefixes = imds.eni_field(mac, "ipv4-prefix").splitlines()
    assert sorted(prefixes) == sorted(p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"]) and len(prefixes) == 2
    assert imds.eni_field(node.mac, "local-ipv4s") == node.primary_ip

    # Removals: an address, the prefixes, then the whole ENI.
    gone = local_ipv4s[-1]
    ec2_client.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=[gone])
    assert gone not in imds.eni_field(mac, "local-ipv4s").splitlines()
    ec2_client.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4Prefixes=prefixes)
    assert imds.status(f"{META}/network/interfaces/macs/{mac}/ipv4-prefix") == 404
    assert "ipv4-prefix" not in imds.lines(f"{META}/network/interfaces/macs/{mac}/")
    ec2_client.detach_network_interface(AttachmentId=eni["Attachment"]["AttachmentId"])
    assert imds.macs() == [node.mac]
    assert imds.status(f"{META}/network/interfaces/macs/{mac}/interface-id") == 404


def test_eni_created_with_prefixes_shows_them(
    localcloud: LocalCloud, ec2_client: Any, localcloud_node: Any
) -> None:
    node = localcloud_node("t3.medium")
    eni = secondary_eni(localcloud, ec2_client, node, Ipv4PrefixCount=1)
    imds = Imds(node.imds_endpoint)
    prefix = imds.eni_field(eni["MacAddress"], "ipv4-prefix")
    assert [prefix] == [p["Ipv4Prefix"] for p in eni["Ipv4Prefixes"]]
    assert prefix.endswith("/28")


def test_tokens_are_enforced(localcloud_node: Any) -> None:
    node = localcloud_node("m5.large")
    imds = Imds(node.imds_endpoint)
    assert imds.status(f"{META}/instance-id") == 200
    assert imds.status(f"{META}/instance-id", token=None) == 401
    assert imds.status(f"{META}/instance-id", token="forged") == 401
    bad_ttl = urllib.request.Request(
        f"{node.imds_endpoint}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "0"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad_ttl, timeout=5)
    assert err.value.code == 400


def test_each_node_sees_only_itself(localcloud: LocalCloud, ec2_client: Any) -> None:
    a, b = localcloud.scenario(["m5.large", "t3.medium"])
    eni = secondary_eni(localcloud, ec2_client, a)
    assert Imds(a.imds_endpoint).macs() == [a.mac, eni["MacAddress"]]
    assert Imds(b.imds_endpoint).macs() == [b.mac]
    assert Imds(b.imds_endpoint).get(f"{META}/instance-type") == "t3.medium"


def wait_until_shown(imds: Imds, mac: str, ip: str, *, present: bool, limit_s: float = 20.0) -> float:
    """Poll until ``ip`` is (or no longer is) in ``local-ipv4s``; returns the time right after that read."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        shown = ip in imds.eni_field(mac, "local-ipv4s").splitlines()
        seen_at = time.monotonic()
        if shown == present:
            return seen_at
        time.sleep(0.05)
    raise AssertionError(f"{ip} still {'absent' if present else 'present'} after {limit_s} s")


def test_real_lag_hides_a_new_address_until_it_has_passed(
    localcloud: LocalCloud, localcloud_node: Any, ec2_client: Any
) -> None:
    node = localcloud_node("m5.large")
    imds_server = localcloud.imds(node)
    lag = 1.0
    imds_server.set_lag(lag)
    imds = Imds(node.imds_endpoint)
    before = time.monotonic()
    new_ip = ec2_client.assign_private_ip_addresses(
        NetworkInterfaceId=node.primary_eni_id, SecondaryPrivateIpAddressCount=1
    )["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
    shown_now = new_ip in imds.eni_field(node.mac, "local-ipv4s").splitlines()
    read_done = time.monotonic()
    if read_done - before < lag:  # on a badly stalled machine the lag may already be over; nothing to see
        assert not shown_now
    # The IMDS clock is this process's monotonic clock, so the address cannot show before `before + lag`.
    assert wait_until_shown(imds, node.mac, new_ip, present=True) >= before + lag


def test_real_stale_keeps_a_removed_address_for_a_while(
    localcloud: LocalCloud, localcloud_node: Any, ec2_client: Any
) -> None:
    node = localcloud_node("m5.large")
    stale = 1.0
    localcloud.imds(node).set_stale(stale)
    ip = ec2_client.assign_private_ip_addresses(
        NetworkInterfaceId=node.primary_eni_id, SecondaryPrivateIpAddressCount=1
    )["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
    imds = Imds(node.imds_endpoint)
    assert ip in imds.eni_field(node.mac, "local-ipv4s").splitlines()
    before = time.monotonic()
    ec2_client.unassign_private_ip_addresses(NetworkInterfaceId=node.primary_eni_id, PrivateIpAddresses=[ip])
    ec2_ips_now = ec2_ips(describe_eni(ec2_client, node.primary_eni_id))
    assert ip not in ec2_ips_now  # EC2 no longer has it ...
    shown_now = ip in imds.eni_field(node.mac, "local-ipv4s").splitlines()
    if time.monotonic() - before < stale:
        assert shown_now  # ... but IMDS still does
    assert wait_until_shown(imds, node.mac, ip, present=False) >= before + stale
