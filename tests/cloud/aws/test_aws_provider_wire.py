"""What AwsProvider puts on the wire where the local cloud cannot show it: pages and ClientToken.

The local cloud (moto underneath) ignores MaxResults and answers everything in one page, and it does
not implement ClientToken idempotency, so these are driven with botocore's Stubber: a real boto3 EC2
client whose answers are EC2-shaped, and which checks every request we send (exact parameters,
validated against the EC2 API model). Our own retry loop runs unchanged: each attempt is one stubbed
request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from vpccni.cloud.aws.provider import AwsProvider, aws_runner
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import RetrySettings


def eni(n: int) -> dict[str, Any]:
    return {
        "NetworkInterfaceId": f"eni-{n:017x}",
        "SubnetId": "subnet-1",
        "VpcId": "vpc-1",
        "PrivateIpAddress": f"10.0.0.{n}",
        "PrivateIpAddresses": [{"PrivateIpAddress": f"10.0.0.{n}", "Primary": True}],
        "Status": "available",
    }


@pytest.fixture
def ec2() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ec2", region_name="us-west-2", aws_access_key_id="t", aws_secret_access_key="t")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_interfaces_are_read_across_pages(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    observer = InMemoryObserver()
    provider = AwsProvider(
        client, aws_runner(budget=ApiBudget(BudgetSettings.unlimited()), observer=observer), page_size=5
    )
    filters = [
        {"Name": "tag-key", "Values": ["node.k8s.amazonaws.com/instance_id"]},
        {"Name": "status", "Values": ["available"]},
        {"Name": "vpc-id", "Values": ["vpc-1"]},
    ]
    pages = [[eni(n) for n in range(1, 6)], [eni(n) for n in range(6, 11)], [eni(11)]]
    for number, page in enumerate(pages):
        expected: dict[str, Any] = {"Filters": filters, "MaxResults": 5}
        if number:
            expected["NextToken"] = f"page-{number}"
        answer: dict[str, Any] = {"NetworkInterfaces": page}
        if number < len(pages) - 1:
            answer["NextToken"] = f"page-{number + 1}"
        stubber.add_response("describe_network_interfaces", answer, expected)

    found = provider.describe_leaked_interfaces(
        vpc_id="vpc-1", owner_tag_key="node.k8s.amazonaws.com/instance_id"
    )
    assert [e.primary_address for e in found] == [f"10.0.0.{n}" for n in range(1, 12)]
    assert observer.calls() == {"DescribeNetworkInterfaces": 3}


def test_subnets_are_read_across_pages_and_ranked_by_free_addresses(ec2: tuple[Any, Stubber]) -> None:
    client, stubber = ec2
    provider = AwsProvider(client, aws_runner(budget=ApiBudget(BudgetSettings.unlimited())))
    subnet = {"VpcId": "vpc-1", "AvailabilityZone": "us-west-2a", "CidrBlock": "10.0.0.0/24"}
    filters = [{"Name": "vpc-id", "Values": ["vpc-1"]}]
    stubber.add_response(
        "describe_subnets",
        {"Subnets": [{**subnet, "SubnetId": "subnet-a", "AvailableIpAddressCount": 7}], "NextToken": "t1"},
        {"Filters": filters, "MaxResults": 1000},
    )
    stubber.add_response(
        "describe_subnets",
        {"Subnets": [{**subnet, "SubnetId": "subnet-b", "AvailableIpAddressCount": 200}]},
        {"Filters": filters, "MaxResults": 1000, "NextToken": "t1"},
    )
    found = provider.describe_subnets(vpc_id="vpc-1")
    assert [(s.subnet_id, s.available_address_count) for s in found] == [("subnet-b", 200), ("subnet-a", 7)]


def test_page_size_outside_ec2s_range_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        AwsProvider(object(), page_size=2000)


def test_create_interface_retries_with_the_same_client_token(ec2: tuple[Any, Stubber]) -> None:
    # EC2 deduplicates CreateNetworkInterface by ClientToken: a retry after a lost answer must carry
    # the token of the first attempt, or a second interface would leak. A new call gets a new token.
    client, stubber = ec2
    tokens = iter(["token-1", "token-2"])
    runner = aws_runner(
        retry=RetrySettings(backoff_base_s=0, backoff_max_s=0), budget=ApiBudget(BudgetSettings.unlimited())
    )
    provider = AwsProvider(client, runner, client_token=lambda: next(tokens))
    base = {
        "SubnetId": "subnet-1",
        "Groups": ["sg-1"],
        "Description": "aws-K8S-i-1",
        "TagSpecifications": [{"ResourceType": "network-interface", "Tags": [{"Key": "k", "Value": "v"}]}],
        "SecondaryPrivateIpAddressCount": 2,
    }
    first = {**base, "ClientToken": "token-1"}
    stubber.add_client_error(
        "create_network_interface", "InternalError", http_status_code=500, expected_params=first
    )
    stubber.add_client_error(
        "create_network_interface", "Unavailable", http_status_code=503, expected_params=first
    )
    stubber.add_response("create_network_interface", {"NetworkInterface": eni(7)}, first)
    stubber.add_response(
        "create_network_interface", {"NetworkInterface": eni(8)}, {**base, "ClientToken": "token-2"}
    )

    def create() -> str:
        made = provider.create_interface(
            subnet_id="subnet-1",
            security_group_ids=["sg-1"],
            description="aws-K8S-i-1",
            tags={"k": "v"},
            secondary_address_count=2,
        )
        return made.primary_address

    assert create() == "10.0.0.7"
    assert create() == "10.0.0.8"
