"""Throttling: AWS's default buckets refuse a burst with RequestLimitExceeded (HTTP 503), botocore's own
retry logic sees it, and the counters say how many calls were refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import AZ, NO_RETRIES, error_code
from vpccni.localcloud.ec2.server import BucketSpec, Ec2Server, ThrottleConfig, Throttler
from vpccni.localcloud.ec2.throttle import MUTATING, NON_MUTATING, UNFILTERED_NON_MUTATING


@pytest.fixture
def default_server() -> Iterator[Ec2Server]:
    with Ec2Server() as server:  # throttle=None: AWS's published buckets
        yield server


def _enis(client: Any, count: int) -> list[str]:
    vpc = client.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/20", AvailabilityZone=AZ)["Subnet"][
        "SubnetId"
    ]
    return [
        client.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        for _ in range(count)
    ]


def test_a_burst_of_200_assigns_is_throttled_and_counted(default_server: Ec2Server) -> None:
    client = default_server.client(**NO_RETRIES)
    enis = _enis(client, 5)  # 5 ENIs x 63 free slots: only the buckets can refuse the burst
    default_server.throttle.configure(ThrottleConfig())  # full default buckets, as for a fresh account
    default_server.reset_counters()

    throttled = succeeded = 0
    for n in range(200):
        try:
            client.assign_private_ip_addresses(
                NetworkInterfaceId=enis[n % 5], SecondaryPrivateIpAddressCount=1
            )
            succeeded += 1
        except ClientError as error:
            assert error.response["Error"]["Code"] == "RequestLimitExceeded"
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            throttled += 1

    assert throttled > 0
    assert succeeded >= 50  # the mutating bucket's burst capacity
    counters = default_server.counters()["AssignPrivateIpAddresses"]
    assert (counters.calls, counters.throttled, counters.errors) == (200, throttled, 0)
    assigned = sum(
        len(e["PrivateIpAddresses"]) - 1
        for e in client.describe_network_interfaces(NetworkInterfaceIds=enis)["NetworkInterfaces"]
    )
    assert assigned == succeeded
    print(
        f"\n200 AssignPrivateIpAddresses against the default buckets: {succeeded} ok, {throttled} throttled"
    )


def test_botocore_retries_a_throttle(ec2_server: Ec2Server) -> None:
    ec2_server.throttle.configure(
        ThrottleConfig(buckets={**ThrottleConfig().buckets, MUTATING: BucketSpec(1, 0)})
    )
    client = ec2_server.client(retries={"mode": "legacy", "total_max_attempts": 3})
    client.create_vpc(CidrBlock="10.0.0.0/16")  # takes the only token
    with pytest.raises(ClientError) as excinfo:
        client.create_vpc(CidrBlock="10.1.0.0/16")
    assert error_code(excinfo) == "RequestLimitExceeded"
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    counters = ec2_server.counters()["CreateVpc"]
    assert (counters.calls, counters.throttled) == (4, 3)  # 1 ok + 1 call tried 3 times
    assert (
        len(client.describe_vpcs()["Vpcs"]) == 2
    )  # the default VPC and the first one; describes have their own bucket


def test_throttling_can_be_switched_off(ec2_server: Ec2Server) -> None:
    client = ec2_server.client(**NO_RETRIES)
    for _ in range(60):  # more than the unfiltered-describe bucket (50) holds
        client.describe_vpcs()
    assert ec2_server.counters()["DescribeVpcs"].throttled == 0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_at_their_rate() -> None:
    clock = FakeClock()
    config = ThrottleConfig(buckets={**ThrottleConfig().buckets, MUTATING: BucketSpec(2, 1)})
    throttler = Throttler(config, clock=clock)
    assert throttler.try_acquire("AttachNetworkInterface")
    assert throttler.try_acquire("CreateNetworkInterface")
    assert not throttler.try_acquire("CreateNetworkInterface")
    assert throttler.try_acquire("DescribeNetworkInterfaces")  # another class, another bucket
    clock.now += 0.5
    assert not throttler.try_acquire("CreateNetworkInterface")
    clock.now += 0.5
    assert throttler.try_acquire("CreateNetworkInterface")
    clock.now += 60
    assert throttler.tokens()[MUTATING] == 2  # never above capacity


def test_action_classes() -> None:
    config = ThrottleConfig(
        buckets={**ThrottleConfig().buckets, "run": BucketSpec(5, 2)}, action_classes={"RunInstances": "run"}
    )
    assert config.class_of("AssignPrivateIpAddresses") == MUTATING
    assert config.class_of("DescribeInstances") == NON_MUTATING
    assert config.class_of("DescribeInstances", filtered=False) == UNFILTERED_NON_MUTATING
    assert config.class_of("RunInstances") == "run"
    with pytest.raises(ValueError, match="Bogus"):
        ThrottleConfig(action_classes={"RunInstances": "Bogus"})
    with pytest.raises(ValueError, match="capacity"):
        ThrottleConfig(buckets={**ThrottleConfig().buckets, MUTATING: BucketSpec(0, 1)})
    with pytest.raises(ValueError, match="non_mutating"):
        ThrottleConfig(buckets={MUTATING: BucketSpec(5, 1)})
