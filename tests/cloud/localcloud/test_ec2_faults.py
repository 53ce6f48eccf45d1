"""Fault injection (by count, by seeded probability, timeouts, 5xx) and latency, seen through boto3."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from tests.cloud.conftest import NO_RETRIES, Network, create_eni, error_code
from vpccni.localcloud.ec2.server import Ec2Server, LatencyProfile, ThrottleConfig


def test_a_fault_fires_on_the_next_n_calls(ec2_server: Ec2Server, ec2: Any, network: Network) -> None:
    eni = create_eni(ec2, network.subnet_id)
    rule = ec2_server.faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded", count=2)
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            ec2.assign_private_ip_addresses(
                NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
            )
        assert error_code(excinfo) == "RequestLimitExceeded"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=eni["NetworkInterfaceId"], SecondaryPrivateIpAddressCount=1
    )
    (after,) = [r for r in ec2_server.faults.rules() if r.rule_id == rule.rule_id]
    assert (after.fired, after.count, after.active) == (2, 0, False)
    counters = ec2_server.counters()["AssignPrivateIpAddresses"]
    assert (counters.calls, counters.throttled, counters.errors) == (3, 2, 0)


def test_any_ec2_error_code_reaches_the_user_intact(
    ec2_server: Ec2Server, ec2: Any, network: Network
) -> None:
    ec2_server.faults.inject(
        "CreateNetworkInterface", "UnauthorizedOperation", message="not for you", count=1
    )
    with pytest.raises(ClientError) as excinfo:
        create_eni(ec2, network.subnet_id)
    assert error_code(excinfo) == "UnauthorizedOperation"
    assert excinfo.value.response["Error"]["Message"] == "not for you"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ec2.describe_network_interfaces()["NetworkInterfaces"] == []  # the call did nothing
    assert ec2_server.counters()["CreateNetworkInterface"].errors == 1


def test_a_server_error_is_retried_by_botocore(ec2_server: Ec2Server, network: Network) -> None:
    client = ec2_server.client(retries={"mode": "legacy", "total_max_attempts": 3})
    ec2_server.faults.inject("DescribeNetworkInterfaces", "InternalError", count=1)
    answer = client.describe_network_interfaces()
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    counters = ec2_server.counters()["DescribeNetworkInterfaces"]
    assert (counters.calls, counters.errors) == (2, 1)


def test_a_wildcard_rule_hits_whatever_comes_next(ec2_server: Ec2Server, ec2: Any) -> None:
    ec2_server.faults.inject("*", "Unavailable", count=1)
    with pytest.raises(ClientError) as excinfo:
        ec2.describe_subnets()
    assert error_code(excinfo) == "Unavailable"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    ec2.describe_subnets()


def _outcomes(server: Ec2Server, calls: int) -> list[bool]:
    client = server.client(**NO_RETRIES)
    results = []
    for _ in range(calls):
        try:
            client.describe_vpcs(VpcIds=[])
            results.append(True)
        except ClientError:
            results.append(False)
    return results


def test_probabilistic_faults_replay_with_the_same_seed() -> None:
    throttle = ThrottleConfig.disabled()
    runs = []
    for seed in (11, 11, 12):
        with Ec2Server(seed=seed, throttle=throttle) as server:
            server.faults.inject("DescribeVpcs", "InternalError", probability=0.5)
            runs.append(_outcomes(server, 24))
    assert runs[0] == runs[1]
    assert True in runs[0] and False in runs[0]
    assert runs[2] != runs[0]  # 2**-24 odds of a false alarm


def test_reseeding_replays_on_the_same_server(ec2_server: Ec2Server) -> None:
    ec2_server.faults.inject("DescribeVpcs", "InternalError", probability=0.3)
    ec2_server.faults.reseed(5)
    first = _outcomes(ec2_server, 16)
    ec2_server.faults.reseed(5)
    assert _outcomes(ec2_server, 16) == first


def test_a_timeout_fault_outlasts_the_clients_read_timeout(ec2_server: Ec2Server) -> None:
    client = ec2_server.client(read_timeout=0.3, **NO_RETRIES)
    ec2_server.faults.inject("DescribeVpcs", timeout_s=1.0, count=1)
    with pytest.raises(ReadTimeoutError):
        client.describe_vpcs()
    client.describe_vpcs()  # the rule was used up


def test_a_held_request_ends_with_the_connection_dropped(ec2_server: Ec2Server) -> None:
    client = ec2_server.client(read_timeout=10, **NO_RETRIES)
    ec2_server.faults.inject("DescribeVpcs", timeout_s=0.2, count=1)
    with pytest.raises(ConnectionClosedError):
        client.describe_vpcs()
    assert ec2_server.counters()["DescribeVpcs"].errors == 1


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"count": 0}, "count"),
        ({"probability": 1.5}, "probability"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"status": 200}, "status"),
    ],
)
def test_bad_fault_arguments_are_named(ec2_server: Ec2Server, arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        ec2_server.faults.inject("DescribeVpcs", "InternalError", **arguments)


# --- latency --------------------------------------------------------------------------------------------


def test_a_configured_delay_is_applied(ec2_server: Ec2Server, ec2: Any) -> None:
    ec2_server.latency.set("DescribeVpcs", 0.4)
    started = time.perf_counter()
    ec2.describe_vpcs()
    assert time.perf_counter() - started >= 0.4


def test_realistic_profile_delays_assignments_and_suggests_an_imds_lag(network: Network) -> None:
    profile = LatencyProfile.realistic()
    assert profile.delay_for("AssignPrivateIpAddresses") == pytest.approx(0.2)
    assert profile.delay_for("DescribeNetworkInterfaces") == pytest.approx(0.1)
    assert LatencyProfile.fast().delay_for("AssignPrivateIpAddresses") == 0
    with Ec2Server(profile="realistic") as server:
        assert server.latency.imds_lag_s == pytest.approx(1.5)
        client = server.client(**NO_RETRIES)
        subnet = client.describe_subnets()["Subnets"][0]["SubnetId"]
        eni = client.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
        started = time.perf_counter()
        client.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=1)
        assert time.perf_counter() - started >= 0.2
    with pytest.raises(ValueError, match="fast, realistic"):
        LatencyProfile.named("slowish")


def test_a_slow_call_does_not_hold_the_state_lock(ec2_server: Ec2Server, ec2: Any, network: Network) -> None:
    ec2_server.latency.set("DescribeVpcs", 1.5)
    slow = threading.Thread(target=ec2_server.client(**NO_RETRIES).describe_vpcs)
    slow.start()
    while ec2_server.counters().get("DescribeVpcs") is None:  # the slow call has arrived and is sleeping
        time.sleep(0.01)
    create_eni(ec2, network.subnet_id)  # a state change goes through meanwhile
    assert slow.is_alive()
    slow.join()
