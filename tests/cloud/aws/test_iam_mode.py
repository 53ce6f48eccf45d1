"""IAM mode of the local cloud: a restricted IAM user gets EC2's UnauthorizedOperation outside its policy
and success inside it — through plain boto3 and through vpccni.cloud's provider — while the facade's
own (admin) calls keep working.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests import REPO
from vpccni.cloud.aws.client import AwsSettings, make_ec2_client
from vpccni.cloud.aws.provider import AwsProvider, aws_runner
from vpccni.cloud.retry import RetrySettings
from vpccni.errors import Unauthorized
from vpccni.localcloud import LocalCloud
from vpccni.localcloud.cloud import Node
from vpccni.localcloud.ec2.iam import IamCredentials, iam_ec2_client

NODE_POLICY = json.loads(
    (REPO / "iam" / "vpccni-node-policy.json").read_text()
)
NO_RETRIES = {"retries": {"total_max_attempts": 1}}


def allow(*actions: str, resource: str = "*") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }


def node_policy_without(action: str) -> dict[str, Any]:
    statements = []
    for st in NODE_POLICY["Statement"]:
        actions = [
            a for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"]) if a != action
        ]
        if actions:
            statements.append({**st, "Action": actions})
    return {**NODE_POLICY, "Statement": statements}


@pytest.fixture
def cloud() -> Iterator[LocalCloud]:
    with LocalCloud() as c:
        yield c


@pytest.fixture
def node(cloud: LocalCloud) -> Node:
    return cloud.add_node("m5.large")


def user(cloud: LocalCloud, name: str, policy: dict[str, Any]) -> tuple[IamCredentials, Any]:
    creds = cloud.iam.create_user(name, policy)
    return creds, iam_ec2_client(cloud.ec2_endpoint, cloud.region, creds, **NO_RETRIES)


def denied(call: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as caught:
        call()
    return dict(caught.value.response)


def new_eni(cloud: LocalCloud, node: Node) -> str:
    eni = cloud.client().create_network_interface(SubnetId=node.subnet_id)["NetworkInterface"]
    return str(eni["NetworkInterfaceId"])


# --- boto3 ----------------------------------------------------------------------------------------------


def test_outside_the_policy_is_unauthorized_operation_worded_as_ec2(cloud: LocalCloud, node: Node) -> None:
    eni = new_eni(cloud, node)
    cloud.iam.enable()
    creds, ec2 = user(cloud, "reader", allow("ec2:DescribeInstances"))

    assert ec2.describe_instances(InstanceIds=[node.instance_id])["Reservations"]
    answer = denied(
        lambda: ec2.attach_network_interface(
            NetworkInterfaceId=eni, InstanceId=node.instance_id, DeviceIndex=1
        )
    )

    assert answer["Error"]["Code"] == "UnauthorizedOperation"
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 403
    instance_arn = f"arn:aws:ec2:{cloud.region}:{cloud.account_id}:instance/{node.instance_id}"
    message = answer["Error"]["Message"]
    assert message.startswith(
        "You are not authorized to perform this operation. "
        f"User: arn:aws:iam::{cloud.account_id}:user/reader "
        f"is not authorized to perform: ec2:AttachNetworkInterface on resource: {instance_arn} "
        "because no identity-based policy allows the ec2:AttachNetworkInterface action. "
        "Encoded authorization failure message: "
    )
    decoded = json.loads(base64.urlsafe_b64decode(message.rsplit(" ", 1)[1]))
    assert decoded["context"] == {
        "principal": {"arn": creds.user_arn},
        "action": "ec2:AttachNetworkInterface",
        "resource": instance_arn,
    }
    # Nothing happened: the interface is still unattached.
    assert (
        cloud.client().describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0][
            "Status"
        ]
        == "available"
    )


def test_a_describe_denial_names_no_resource(cloud: LocalCloud) -> None:
    cloud.iam.enable()
    _, ec2 = user(cloud, "nobody", allow("ec2:DescribeSubnets"))
    message = denied(ec2.describe_instances)["Error"]["Message"]
    assert message.endswith(
        "is not authorized to perform: ec2:DescribeInstances "
        "because no identity-based policy allows the ec2:DescribeInstances action"
    )


def test_an_explicit_deny_is_worded_as_such(cloud: LocalCloud, node: Node) -> None:
    cloud.iam.enable()
    policy = allow("ec2:*")
    policy["Statement"].append({"Effect": "Deny", "Action": "ec2:DeleteNetworkInterface", "Resource": "*"})
    _, ec2 = user(cloud, "careful", policy)
    eni = new_eni(cloud, node)
    message = denied(lambda: ec2.delete_network_interface(NetworkInterfaceId=eni))["Error"]["Message"]
    assert "is not authorized to perform: ec2:DeleteNetworkInterface on resource: " in message
    assert "with an explicit deny in an identity-based policy" in message


def test_the_node_policy_tags_network_interfaces_and_nothing_else(cloud: LocalCloud, node: Node) -> None:
    cloud.iam.enable()
    _, ec2 = user(cloud, "node", NODE_POLICY)
    tags = [{"Key": "node.k8s.amazonaws.com/instance_id", "Value": node.instance_id}]

    ec2.create_tags(Resources=[node.primary_eni_id], Tags=tags)
    for kind, other in (("instance", node.instance_id), ("subnet", node.subnet_id)):
        answer = denied(lambda other=other: ec2.create_tags(Resources=[other], Tags=tags))
        assert answer["Error"]["Code"] == "UnauthorizedOperation"
        arn = f"arn:aws:ec2:{cloud.region}:{cloud.account_id}:{kind}/{other}"
        assert (
            f"ec2:CreateTags on resource: {arn} because no identity-based policy allows"
            in answer["Error"]["Message"]
        )

    created = ec2.create_network_interface(
        SubnetId=node.subnet_id,
        TagSpecifications=[{"ResourceType": "network-interface", "Tags": tags}],
    )["NetworkInterface"]
    assert created["TagSet"] == tags


def test_creating_a_tagged_interface_needs_create_tags_as_on_ec2(cloud: LocalCloud, node: Node) -> None:
    cloud.iam.enable()
    _, ec2 = user(cloud, "untagger", node_policy_without("ec2:CreateTags"))
    spec = [{"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v"}]}]

    answer = denied(lambda: ec2.create_network_interface(SubnetId=node.subnet_id, TagSpecifications=spec))
    assert answer["Error"]["Code"] == "UnauthorizedOperation"
    assert (
        f"ec2:CreateTags on resource: arn:aws:ec2:{cloud.region}:{cloud.account_id}:network-interface/*"
        in answer["Error"]["Message"]
    )
    assert ec2.create_network_interface(SubnetId=node.subnet_id)["NetworkInterface"]["Status"] == "available"


def test_the_facade_keeps_working_as_the_account_admin(cloud: LocalCloud) -> None:
    cloud.iam.enable()
    node = cloud.add_node("t3.medium")  # RunInstances, CreateVpc ... signed with the admin key
    assert cloud.client().describe_instances(InstanceIds=[node.instance_id])["Reservations"]


def test_unknown_keys_and_bad_signatures_are_auth_failures(cloud: LocalCloud) -> None:
    cloud.iam.enable()
    creds, _ = user(cloud, "someone", allow("ec2:DescribeInstances"))
    forged = IamCredentials(creds.user_name, creds.user_arn, creds.access_key_id, "not-the-secret")
    stranger = IamCredentials("x", "x", "AKIAUNKNOWNKEY000000", "secret")
    for bad in (forged, stranger):
        answer = denied(
            iam_ec2_client(cloud.ec2_endpoint, cloud.region, bad, **NO_RETRIES).describe_instances
        )
        assert answer["Error"]["Code"] == "AuthFailure"
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_iam_mode_is_per_cloud_and_off_by_default(cloud: LocalCloud) -> None:
    stranger = IamCredentials("x", "x", "AKIAUNKNOWNKEY000000", "secret")
    with LocalCloud() as other:
        other.iam.enable()
        # This cloud never enabled IAM: any key is accepted, as before.
        assert (
            "Reservations" in iam_ec2_client(cloud.ec2_endpoint, cloud.region, stranger).describe_instances()
        )
        assert (
            denied(
                iam_ec2_client(other.ec2_endpoint, other.region, stranger, **NO_RETRIES).describe_instances
            )["Error"]["Code"]
            == "AuthFailure"
        )


def test_a_denied_call_is_counted_as_an_unauthorized_error(cloud: LocalCloud) -> None:
    cloud.iam.enable()
    _, ec2 = user(cloud, "counted", allow("ec2:DescribeSubnets"))
    cloud.server.reset_counters()
    denied(ec2.describe_instances)
    counts = cloud.server.counters()["DescribeInstances"]
    assert (counts.calls, counts.errors) == (1, 1)
    [denial] = cloud.iam.denials()
    assert (denial.called, denial.missing.action, denial.missing.resource) == ("DescribeInstances",) * 2 + (
        "*",
    )
    assert denial.user_arn.endswith(":user/counted")


def test_a_changed_policy_applies_to_the_next_request(cloud: LocalCloud) -> None:
    cloud.iam.enable()
    _, ec2 = user(cloud, "grows", allow("ec2:DescribeSubnets"))
    denied(ec2.describe_instances)
    cloud.iam.put_user_policy("grows", allow("ec2:DescribeInstances"))
    assert "Reservations" in ec2.describe_instances()


# --- through vpccni.cloud -------------------------------------------------------------------------------


def provider_for(cloud: LocalCloud, creds: IamCredentials, monkeypatch: pytest.MonkeyPatch) -> AwsProvider:
    """The provider as ipamd builds it: credentials from boto3's default chain (the environment)."""
    for name, value in creds.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings = AwsSettings(region=cloud.region, endpoint_url=cloud.ec2_endpoint, http_timeout_s=5)
    retry = RetrySettings(max_attempts=3, max_total_s=10, backoff_base_s=0.01, backoff_max_s=0.02)
    return AwsProvider(make_ec2_client(settings), aws_runner(retry=retry))


def test_the_provider_maps_the_denial_to_unauthorized_naming_the_action(
    cloud: LocalCloud, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.iam.enable()
    creds, _ = user(cloud, "ipamd", node_policy_without("ec2:AssignPrivateIpAddresses"))
    provider = provider_for(cloud, creds, monkeypatch)

    assert provider.describe_instance(node.instance_id).instance_id == node.instance_id
    cloud.server.reset_counters()
    with pytest.raises(Unauthorized) as caught:
        provider.assign_addresses(node.primary_eni_id, 2)

    err = caught.value
    assert (err.action, err.code) == ("AssignPrivateIpAddresses", "UnauthorizedOperation")
    assert "is not authorized to perform: ec2:AssignPrivateIpAddresses" in err.message
    assert cloud.server.counters()["AssignPrivateIpAddresses"].calls == 1  # permanent: never retried


def test_the_provider_succeeds_inside_the_node_policy(
    cloud: LocalCloud, node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud.iam.enable()
    creds, _ = user(cloud, "ipamd", NODE_POLICY)
    provider = provider_for(cloud, creds, monkeypatch)

    added = provider.assign_addresses(node.primary_eni_id, 2)
    assert len(added) == 2
    provider.unassign_addresses(node.primary_eni_id, added)
    provider.create_tags([node.primary_eni_id], {"node.k8s.amazonaws.com/instance_id": node.instance_id})
