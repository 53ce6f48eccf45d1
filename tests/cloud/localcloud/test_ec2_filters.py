"""DescribeNetworkInterfaces filters ipamd relies on and moto gets wrong or lacks."""

from __future__ import annotations

from typing import Any

from tests.cloud.conftest import Network, create_eni, run_instance


def _ids(ec2: Any, *filters: tuple[str, list[str]], **kwargs: Any) -> set[str]:
    answer = ec2.describe_network_interfaces(Filters=[{"Name": n, "Values": v} for n, v in filters], **kwargs)
    return {e["NetworkInterfaceId"] for e in answer["NetworkInterfaces"]}


def test_private_ip_address_filters_match_secondaries(ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id, PrivateIpAddress="10.0.1.10", SecondaryPrivateIpAddressCount=2)
    create_eni(ec2, network.subnet_id, PrivateIpAddress="10.0.1.20")
    secondary = eni["PrivateIpAddresses"][1]["PrivateIpAddress"]
    held = {a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"]} | {"10.0.1.20"}
    unheld = next(f"10.0.1.{n}" for n in range(4, 255) if f"10.0.1.{n}" not in held)
    for name in ("private-ip-address", "addresses.private-ip-address"):
        assert _ids(ec2, (name, [secondary])) == {eni["NetworkInterfaceId"]}
        assert _ids(ec2, (name, ["10.0.1.10"])) == {eni["NetworkInterfaceId"]}
        assert _ids(ec2, (name, [unheld])) == set()
    assert {eni["NetworkInterfaceId"]} < _ids(ec2, ("private-ip-address", ["10.0.1.?0"]))  # EC2 wildcards


def test_attachment_filters(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id)
    primary_id = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    attached = create_eni(ec2, network.subnet_id)
    loose = create_eni(ec2, network.subnet_id)
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=attached["NetworkInterfaceId"], InstanceId=instance["InstanceId"], DeviceIndex=1
    )["AttachmentId"]

    assert _ids(ec2, ("attachment.status", ["attached"])) == {primary_id, attached["NetworkInterfaceId"]}
    assert loose["NetworkInterfaceId"] not in _ids(ec2, ("attachment.status", ["attached", "attaching"]))
    assert _ids(ec2, ("attachment.device-index", ["1"])) == {attached["NetworkInterfaceId"]}
    assert _ids(ec2, ("attachment.delete-on-termination", ["true"])) == {primary_id}
    assert _ids(
        ec2, ("attachment.instance-id", [instance["InstanceId"]]), ("attachment.device-index", ["0"])
    ) == {primary_id}

    ec2.detach_network_interface(AttachmentId=attachment)
    assert _ids(ec2, ("attachment.status", ["attached"])) == {primary_id}


def test_our_filters_combine_with_moto_filters_and_pagination(ec2: Any, network: Network) -> None:
    tagged = [
        create_eni(
            ec2,
            network.subnet_id,
            TagSpecifications=[
                {"ResourceType": "network-interface", "Tags": [{"Key": "node", "Value": "a"}]}
            ],
        )
        for _ in range(3)
    ]
    create_eni(ec2, network.subnet_id)  # untagged: filtered out by moto's tag filter
    addresses = [e["PrivateIpAddress"] for e in tagged]
    seen: set[str] = set()
    token = None
    while True:
        kwargs: dict[str, Any] = {"MaxResults": 5, **({"NextToken": token} if token else {})}
        answer = ec2.describe_network_interfaces(
            Filters=[
                {"Name": "tag:node", "Values": ["a"]},
                {"Name": "private-ip-address", "Values": addresses[:2]},
            ],
            **kwargs,
        )
        seen |= {e["NetworkInterfaceId"] for e in answer["NetworkInterfaces"]}
        token = answer.get("NextToken")
        if not token:
            break
    assert seen == {e["NetworkInterfaceId"] for e in tagged[:2]}


def test_instance_filter_answers_as_the_full_walk(ec2: Any, network: Network) -> None:
    """The local cloud answers ``attachment.instance-id`` from the instance's own ENIs; the answer must be
    the one a walk over every ENI gives: several instances, a detached ENI, an unknown id, a wildcard."""
    one = run_instance(ec2, network.subnet_id)
    two = run_instance(ec2, network.subnet_id)
    extra = create_eni(ec2, network.subnet_id)
    gone = create_eni(ec2, network.subnet_id)
    ec2.attach_network_interface(NetworkInterfaceId=extra["NetworkInterfaceId"], InstanceId=one["InstanceId"],
                                 DeviceIndex=1)
    detach = ec2.attach_network_interface(NetworkInterfaceId=gone["NetworkInterfaceId"],
                                          InstanceId=one["InstanceId"], DeviceIndex=2)["AttachmentId"]
    ec2.detach_network_interface(AttachmentId=detach)
    one_ids = {one["NetworkInterfaces"][0]["NetworkInterfaceId"], extra["NetworkInterfaceId"]}
    two_ids = {two["NetworkInterfaces"][0]["NetworkInterfaceId"]}

    assert _ids(ec2, ("attachment.instance-id", [one["InstanceId"]])) == one_ids
    assert _ids(ec2, ("attachment.instance-id", [one["InstanceId"], two["InstanceId"]])) == one_ids | two_ids
    assert _ids(ec2, ("attachment.instance-id", ["i-0123456789abcdef0", two["InstanceId"]])) == two_ids
    assert _ids(ec2, ("attachment.instance-id", ["i-0123456789abcdef0"])) == set()
    assert _ids(ec2, ("attachment.instance-id", [one["InstanceId"][:-1] + "?"])) >= one_ids
