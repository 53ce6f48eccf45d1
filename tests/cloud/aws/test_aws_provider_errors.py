"""AwsProvider's error classes and retry policy against the local cloud.

Limit errors come from the local cloud's EC2 semantics (the instance type's ENI limit, the per-ENI
address limit, subnet space, /28 space); throttles, 5xx, timeouts and IAM refusals from its fault
injection. The server's own per-action counters confirm how many requests really reached it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud.aws.aws_provider_support import *  # noqa: F403  (the provider fixtures)
from tests.cloud.aws.aws_provider_support import ProviderFactory, new_eni, server_calls
from vpccni.cloud.aws.provider import AwsProvider
from vpccni.cloud.base import InstanceInfo
from vpccni.cloud.budget import ActionClass, ApiBudget, BucketSettings, BudgetSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import RetrySettings
from vpccni.errors import (
    AddressLimitExceeded,
    CloudNotFound,
    CloudServerError,
    CloudTimeout,
    EniLimitExceeded,
    NoCidrBlock,
    SubnetFull,
    Unauthorized,
)

# --- EC2's own limits --------------------------------------------------------------------------------


def test_eni_limit(provider: AwsProvider, instance: InstanceInfo) -> None:
    for index in (1, 2):  # m5.large: 3 interfaces in all
        provider.attach_interface(new_eni(provider, instance).interface_id, instance.instance_id, index)
    extra = new_eni(provider, instance)
    with pytest.raises(EniLimitExceeded) as info:
        provider.attach_interface(extra.interface_id, instance.instance_id, 3)
    assert info.value.code == "AttachmentLimitExceeded"
    assert info.value.action == "AttachNetworkInterface"


def test_address_limit(provider: AwsProvider, instance: InstanceInfo) -> None:
    # m5.large: 10 IPv4 slots per interface (the primary address takes one; a /28 prefix takes one).
    eni = new_eni(provider, instance, secondary_address_count=8)
    provider.attach_interface(eni.interface_id, instance.instance_id, 1)
    provider.assign_addresses(eni.interface_id, 1)  # slot 10 of 10
    with pytest.raises(AddressLimitExceeded) as info:
        provider.assign_addresses(eni.interface_id, 1)
    assert info.value.code == "PrivateIpAddressLimitExceeded"
    with pytest.raises(AddressLimitExceeded):
        provider.assign_prefixes(eni.interface_id, 1)


def test_subnet_full(provider: AwsProvider, localcloud: Any, instance: InstanceInfo) -> None:
    vpc, _, _ = localcloud.default_network()
    tiny = localcloud.create_subnet(vpc, "10.0.200.0/28")  # 16 - 5 reserved = 11 usable
    eni = new_eni(provider, instance, subnet_id=tiny.subnet_id, secondary_address_count=9)  # 10 used
    with pytest.raises(SubnetFull) as info:
        provider.assign_addresses(eni.interface_id, 2)
    assert info.value.code == "InsufficientFreeAddressesInSubnet"


def test_no_free_prefix(provider: AwsProvider, localcloud: Any, instance: InstanceInfo) -> None:
    vpc, _, _ = localcloud.default_network()
    # A /26 has four /28s; the first holds the reserved .0-.3 and the last the broadcast address, and
    # the interface's own primary address may block one more: at most two prefixes fit.
    small = localcloud.create_subnet(vpc, "10.0.201.0/26")
    eni = new_eni(provider, instance, subnet_id=small.subnet_id)
    provider.attach_interface(eni.interface_id, instance.instance_id, 1)
    delegated: list[str] = []
    with pytest.raises(NoCidrBlock) as info:
        for _ in range(4):
            delegated += provider.assign_prefixes(eni.interface_id, 1)
    assert info.value.code == "InsufficientCidrBlocks"
    assert 1 <= len(delegated) <= 2


def test_not_found(provider: AwsProvider, node: Any) -> None:
    with pytest.raises(CloudNotFound):
        provider.assign_addresses("eni-0000000000000dead", 1)
    with pytest.raises(CloudNotFound):
        provider.attach_interface("eni-0000000000000dead", node.instance_id, 1)


def test_unauthorized_is_permanent_and_not_retried(
    provider: AwsProvider, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    localcloud.server.faults.inject("AssignPrivateIpAddresses", code="UnauthorizedOperation", status=403)
    with pytest.raises(Unauthorized) as info:
        provider.assign_addresses(instance.primary_interface_id, 1)
    assert info.value.code == "UnauthorizedOperation"
    assert observer.calls()["AssignPrivateIpAddresses"] == 1
    assert server_calls(localcloud, "AssignPrivateIpAddresses") == 1


# --- retries -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"), [("RequestLimitExceeded", 503), ("InternalError", 500), ("Unavailable", 503)]
)
def test_retryable_faults_are_retried(
    provider: AwsProvider,
    localcloud: Any,
    instance: InstanceInfo,
    observer: InMemoryObserver,
    code: str,
    status: int,
) -> None:
    localcloud.server.faults.inject("AssignPrivateIpAddresses", code=code, status=status, count=2)
    new = provider.assign_addresses(instance.primary_interface_id, 2)
    assert len(new) == 2
    assert observer.calls()["AssignPrivateIpAddresses"] == 3
    assert observer.errors() == {("AssignPrivateIpAddresses", code): 2}
    assert server_calls(localcloud, "AssignPrivateIpAddresses") == 3


def test_retries_are_bounded(
    provider: AwsProvider, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    localcloud.server.faults.inject("DescribeNetworkInterfaces", code="InternalError", status=500)
    with pytest.raises(CloudServerError):
        provider.describe_instance_interfaces(instance.instance_id)
    assert observer.calls()["DescribeNetworkInterfaces"] == 4  # FAST_RETRY.max_attempts
    assert server_calls(localcloud, "DescribeNetworkInterfaces") == 4


def test_permanent_faults_are_not_retried(
    provider: AwsProvider, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    localcloud.server.faults.inject(
        "AssignPrivateIpAddresses", code="InsufficientFreeAddressesInSubnet", count=1
    )
    with pytest.raises(SubnetFull):
        provider.assign_addresses(instance.primary_interface_id, 1)
    assert observer.calls()["AssignPrivateIpAddresses"] == 1
    assert server_calls(localcloud, "AssignPrivateIpAddresses") == 1


def test_timeouts_are_retried(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    provider = make_provider(http_timeout_s=0.3)
    localcloud.server.faults.inject("DescribeSubnets", code="RequestTimeout", timeout_s=1.0, count=1)
    [subnet] = provider.describe_subnets(subnet_ids=[instance.subnet_id])
    assert subnet.subnet_id == instance.subnet_id
    codes = [r.error_code for r in observer.records if r.action == "DescribeSubnets"]
    assert codes == ["ReadTimeoutError", None]


def test_a_timeout_that_never_ends_is_a_cloud_timeout(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo
) -> None:
    provider = make_provider(
        http_timeout_s=0.2, retry=RetrySettings(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.01)
    )
    localcloud.server.faults.inject("DescribeSubnets", code="RequestTimeout", timeout_s=0.5)
    with pytest.raises(CloudTimeout) as info:
        provider.describe_subnets(subnet_ids=[instance.subnet_id])
    assert info.value.__cause__ is not None


def test_throttles_cut_the_budget_rate(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    bucket = BucketSettings(capacity=50, rate=50.0, min_rate=1.0, decrease_cooldown_s=0.0)
    budget = ApiBudget(BudgetSettings(mutating=bucket, describe=bucket))
    provider = make_provider(budget=budget)
    localcloud.server.faults.inject("AssignPrivateIpAddresses", code="RequestLimitExceeded", count=2)
    provider.assign_addresses(instance.primary_interface_id, 1)
    state = budget.state()
    assert state[ActionClass.MUTATING].throttles == 2
    assert state[ActionClass.MUTATING].rate == pytest.approx(12.5, rel=0.05)  # halved twice
    assert state[ActionClass.DESCRIBE].rate == 50.0
    assert observer.throttled() == 2


def test_the_servers_own_throttling_is_survived(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo, observer: InMemoryObserver
) -> None:
    from vpccni.localcloud.ec2.throttle import MUTATING, NON_MUTATING, BucketSpec, ThrottleConfig

    spec = BucketSpec(capacity=3, refill_per_s=20.0)
    localcloud.server.throttle.configure(ThrottleConfig(buckets={MUTATING: spec, NON_MUTATING: spec}))
    budget = ApiBudget(
        BudgetSettings(
            mutating=BucketSettings(capacity=10, rate=100.0, min_rate=5.0, decrease_cooldown_s=0.0),
            describe=BucketSettings(capacity=10, rate=100.0, min_rate=5.0),
        )
    )
    provider = make_provider(budget=budget, retry=RetrySettings(max_attempts=8, backoff_base_s=0.02))
    eni = new_eni(provider, instance)
    for _ in range(6):
        provider.assign_addresses(eni.interface_id, 1)
    [after] = provider.describe_interfaces([eni.interface_id])
    assert len(after.secondary_addresses) == 6
    assert observer.throttled() > 0  # the server did throttle ...
    assert budget.state()[ActionClass.MUTATING].rate < 100.0  # ... and the node slowed down


# --- ambiguous outcomes ------------------------------------------------------------------------------


def test_attach_whose_first_attempt_was_lost_resyncs(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo, ec2_client: Any
) -> None:
    provider = make_provider(http_timeout_s=0.3)
    eni = new_eni(provider, instance)
    # What a lost attempt leaves behind: EC2 attached it, the caller never heard back.
    done = ec2_client.attach_network_interface(
        NetworkInterfaceId=eni.interface_id, InstanceId=instance.instance_id, DeviceIndex=1
    )["AttachmentId"]
    localcloud.server.faults.inject("AttachNetworkInterface", code="RequestTimeout", timeout_s=1.0, count=1)
    # Our first attempt times out; the retry is refused (already attached); describe shows it is ours.
    assert provider.attach_interface(eni.interface_id, instance.instance_id, 1) == done


def test_detach_whose_first_attempt_was_lost_resyncs(
    make_provider: ProviderFactory, localcloud: Any, instance: InstanceInfo, ec2_client: Any
) -> None:
    provider = make_provider(http_timeout_s=0.3)
    eni = new_eni(provider, instance)
    attachment_id = provider.attach_interface(eni.interface_id, instance.instance_id, 1)
    ec2_client.detach_network_interface(AttachmentId=attachment_id)  # the lost attempt's effect
    localcloud.server.faults.inject("DetachNetworkInterface", code="RequestTimeout", timeout_s=1.0, count=1)
    # Timeout, then a refusal; describing the attachment shows the detach happened: success, not an error.
    assert provider.detach_interface(attachment_id) is True
    [after] = provider.describe_interfaces([eni.interface_id])
    assert after.status == "available"
