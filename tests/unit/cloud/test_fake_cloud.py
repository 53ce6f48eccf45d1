"""What only the fake has: its fault hook, its call log, test-registered instance types, thread safety.

EC2's semantics (limits, addresses, prefixes, attach, errors) are the contract tests' (tests/cloud/contract),
run on the fake and on the local cloud alike.
"""

from __future__ import annotations

import threading
import time

import pytest

from vpccni.cloud.base import CloudProvider
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.fake import Call, FakeCloud, FakeProvider, map_error
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.config.limits import InstanceLimits
from vpccni.errors import (
    AddressLimitExceeded,
    CloudServerError,
    CloudThrottled,
    EniLimitExceeded,
    Unauthorized,
    UnknownInstanceType,
)


@pytest.fixture
def cloud() -> FakeCloud:
    return FakeCloud(seed=1)


def test_a_fault_answers_the_next_requests_of_its_action_then_stops(cloud: FakeCloud) -> None:
    node = cloud.add_node("m5.large")
    provider: CloudProvider = FakeProvider(cloud)  # the typed proof, as a test would hold it
    cloud.fail("AssignPrivateIpAddresses", "RequestLimitExceeded", count=2)
    for _ in range(2):
        with pytest.raises(CloudThrottled) as throttled:
            provider.assign_addresses(node.primary_eni_id, 1)
        assert throttled.value.code == "RequestLimitExceeded"
        assert throttled.value.__cause__ is not None, "the fake's answer is chained, as botocore's is"
    provider.describe_subnets()  # another action is not affected
    assert len(provider.assign_addresses(node.primary_eni_id, 1)) == 1
    assert cloud.log[-4:] == [Call("AssignPrivateIpAddresses", "RequestLimitExceeded")] * 2 + [
        Call("DescribeSubnets"), Call("AssignPrivateIpAddresses")]


def test_fault_rules_fire_in_the_order_added_and_any_action_matches_star(cloud: FakeCloud) -> None:
    node = cloud.add_node("m5.large")
    provider = FakeProvider(cloud)
    cloud.fail("*", "InternalError", count=1)
    cloud.fail("AssignPrivateIpAddresses", "UnauthorizedOperation", count=None)
    with pytest.raises(CloudServerError):
        provider.assign_addresses(node.primary_eni_id, 1)  # "*" was added first
    for _ in range(3):
        with pytest.raises(Unauthorized):
            provider.assign_addresses(node.primary_eni_id, 1)  # count=None: until cleared
    cloud.clear_faults()
    assert provider.assign_addresses(node.primary_eni_id, 1)
    with pytest.raises(ValueError, match="count"):
        cloud.fail("CreateTags", "InternalError", count=0)


def test_the_call_log_counts_requests_and_successful_mutations(cloud: FakeCloud) -> None:
    node = cloud.add_node("m5.large")
    provider = FakeProvider(cloud)
    assert cloud.log == [], "scenario helpers are set-up, not requests"
    provider.describe_instance(node.instance_id)
    provider.assign_addresses(node.primary_eni_id, 2)
    with pytest.raises(AddressLimitExceeded):
        provider.assign_addresses(node.primary_eni_id, 9)
    provider.unassign_addresses(node.primary_eni_id, [])  # nothing to do: no request, as the AWS provider
    assert cloud.actions() == ["DescribeInstances", "AssignPrivateIpAddresses", "AssignPrivateIpAddresses"]
    assert cloud.calls("AssignPrivateIpAddresses") == 2
    assert cloud.mutations() == {"AssignPrivateIpAddresses": 1} and cloud.mutation_count == 1
    assert cloud.log[-1].error == "PrivateIpAddressLimitExceeded"


def test_a_registered_instance_type_sets_the_limits(cloud: FakeCloud) -> None:
    cloud.register_instance_type(InstanceLimits("sim.2x3", 2, 3, 0, "nitro", False, 1, 2))
    node = cloud.add_node("sim.2x3")
    provider = FakeProvider(cloud)
    assert provider.describe_instance_type("sim.2x3")["InstanceType"] == "sim.2x3"
    provider.assign_addresses(node.primary_eni_id, 2)
    with pytest.raises(AddressLimitExceeded):
        provider.assign_addresses(node.primary_eni_id, 1)
    second, third = (provider.create_interface(subnet_id=node.subnet_id, security_group_ids=[],
                                               description="", tags={}) for _ in range(2))
    provider.attach_interface(second.interface_id, node.instance_id, 1)
    with pytest.raises(EniLimitExceeded):
        provider.attach_interface(third.interface_id, node.instance_id, 2)
    with pytest.raises(UnknownInstanceType):
        cloud.add_node("sim.nope")


def test_through_a_call_runner_retries_wait_on_the_runner_s_clock(cloud: FakeCloud) -> None:
    node = cloud.add_node("m5.large")
    now = [0.0]
    clock, sleep = (lambda: now[0]), (lambda s: now.__setitem__(0, now[0] + s))
    runner = CallRunner(map_error=map_error, retry=RetrySettings(max_attempts=3, backoff_base_s=1.0),
                        budget=ApiBudget(BudgetSettings.unlimited(), clock=clock, sleep=sleep),
                        clock=clock, sleep=sleep)
    cloud.fail("AssignPrivateIpAddresses", "InternalError", count=2)
    started = time.monotonic()
    assert len(FakeProvider(cloud, runner=runner).assign_addresses(node.primary_eni_id, 1)) == 1
    assert cloud.calls("AssignPrivateIpAddresses") == 3, "two server errors retried, then the answer"
    assert now[0] > 0 and time.monotonic() - started < 0.5, "the back-off passed on the virtual clock only"


def test_concurrent_requests_never_hand_out_an_address_twice(cloud: FakeCloud) -> None:
    nodes = [cloud.add_node("c5.4xlarge") for _ in range(4)]  # 30 addresses per ENI
    provider = FakeProvider(cloud)
    got: list[str] = []

    def fill(eni_id: str) -> None:
        for _ in range(29):
            got.extend(provider.assign_addresses(eni_id, 1))

    threads = [threading.Thread(target=fill, args=(n.primary_eni_id,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 4 * 29
    assert cloud.free_addresses(nodes[0].subnet_id) == 4091 - 4 - 4 * 29
