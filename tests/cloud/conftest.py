"""Fixtures for the EC2 layer's own tests: a fresh Ec2Server per test and a small network in it.

``ec2_server`` has throttling off so that semantic tests are not throttled by their own setup; the
throttling tests build servers with the buckets they test. Clients have botocore retries off: a test
asserts the first answer a user's call gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from vpccni.localcloud.ec2.server import Ec2Server, ThrottleConfig

NO_RETRIES = {"retries": {"total_max_attempts": 1}}
AZ = "us-west-2a"


@pytest.fixture
def ec2_server() -> Iterator[Ec2Server]:
    with Ec2Server(throttle=ThrottleConfig.disabled(), seed=7) as server:
        yield server


@pytest.fixture
def ec2(ec2_server: Ec2Server) -> Any:
    """A boto3 EC2 client bound to ``ec2_server``, retries off."""
    return ec2_server.client(**NO_RETRIES)


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_id: str  # 10.0.1.0/24 in us-west-2a


@pytest.fixture
def network(ec2: Any) -> Network:
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24", AvailabilityZone=AZ)["Subnet"][
        "SubnetId"
    ]
    return Network(vpc_id, subnet_id)


def add_subnet(ec2: Any, network: Network, cidr: str) -> str:
    return str(
        ec2.create_subnet(VpcId=network.vpc_id, CidrBlock=cidr, AvailabilityZone=AZ)["Subnet"]["SubnetId"]
    )


def run_instance(ec2: Any, subnet_id: str, instance_type: str = "m5.large") -> dict[str, Any]:
    instance: dict[str, Any] = ec2.run_instances(
        ImageId="ami-0123456789abcdef0",
        InstanceType=instance_type,
        MinCount=1,
        MaxCount=1,
        SubnetId=subnet_id,
    )["Instances"][0]
    return instance


def create_eni(ec2: Any, subnet_id: str, **kwargs: Any) -> dict[str, Any]:
    eni: dict[str, Any] = ec2.create_network_interface(SubnetId=subnet_id, **kwargs)["NetworkInterface"]
    return eni


def error_code(excinfo: pytest.ExceptionInfo[Any]) -> str:
    """The EC2 error code a botocore ClientError carries."""
    return str(excinfo.value.response["Error"]["Code"])
