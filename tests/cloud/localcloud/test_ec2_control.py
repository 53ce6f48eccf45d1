"""The HTTP control plane (``/_localcloud/``): what another process uses to steer the local EC2."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import NO_RETRIES, error_code
from vpccni.localcloud.ec2.control import ControlError
from vpccni.localcloud.ec2.server import BucketSpec, Ec2ControlClient, Ec2Server, ThrottleConfig
from vpccni.localcloud.ec2.throttle import MUTATING


@pytest.fixture
def control(ec2_server: Ec2Server) -> Ec2ControlClient:
    return Ec2ControlClient(ec2_server.endpoint)


def _raw(server: Ec2Server, method: str, route: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{server.endpoint}/_localcloud/{route}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_identity(ec2_server: Ec2Server) -> None:
    assert _raw(ec2_server, "GET", "") == (200, {"account_id": ec2_server.account_id, "region": "us-west-2"})


def test_faults_over_http(ec2_server: Ec2Server, control: Ec2ControlClient, ec2: Any) -> None:
    rule = control.inject_fault("DescribeSubnets", "RequestLimitExceeded", count=1)
    assert (rule["action"], rule["status"], rule["count"]) == ("DescribeSubnets", 503, 1)
    with pytest.raises(ClientError) as excinfo:
        ec2.describe_subnets()
    assert error_code(excinfo) == "RequestLimitExceeded"
    assert [r["fired"] for r in control.fault_rules()] == [1]

    control.inject_fault("DescribeSubnets", "InternalError")  # every call, until cleared
    with pytest.raises(ClientError):
        ec2.describe_subnets()
    control.clear_faults()
    assert control.fault_rules() == []
    ec2.describe_subnets()


def test_fault_seed_over_http(ec2_server: Ec2Server, control: Ec2ControlClient, ec2: Any) -> None:
    control.inject_fault("DescribeVpcs", "InternalError", probability=0.5)

    def run() -> list[bool]:
        outcomes = []
        for _ in range(12):
            try:
                ec2.describe_vpcs()
                outcomes.append(True)
            except ClientError:
                outcomes.append(False)
        return outcomes

    control.reseed_faults(3)
    first = run()
    control.reseed_faults(3)
    assert run() == first


def test_throttle_over_http(ec2_server: Ec2Server, control: Ec2ControlClient) -> None:
    config = ThrottleConfig(buckets={**ThrottleConfig().buckets, MUTATING: BucketSpec(1, 0)})
    state = control.configure_throttle(config)
    assert state["config"]["buckets"][MUTATING] == {"capacity": 1, "refill_per_s": 0}
    client = ec2_server.client(**NO_RETRIES)
    client.create_vpc(CidrBlock="10.0.0.0/16")
    with pytest.raises(ClientError) as excinfo:
        client.create_vpc(CidrBlock="10.1.0.0/16")
    assert error_code(excinfo) == "RequestLimitExceeded"
    assert control.throttle_state()["tokens"][MUTATING] == pytest.approx(0)
    assert ec2_server.throttle.config == config


def test_latency_over_http(ec2_server: Ec2Server, control: Ec2ControlClient, ec2: Any) -> None:
    state = control.set_latency(profile="realistic", delays_s={"DescribeVpcs": 0.3})
    assert state["profile"] == "realistic"
    assert state["delays_s"]["DescribeVpcs"] == 0.3
    assert state["imds_lag_s"] == 1.5
    started = time.perf_counter()
    ec2.describe_vpcs()
    assert time.perf_counter() - started >= 0.3


def test_counters_over_http(ec2_server: Ec2Server, control: Ec2ControlClient, ec2: Any) -> None:
    ec2.describe_vpcs()
    with pytest.raises(ClientError):
        ec2.delete_network_interface(NetworkInterfaceId="eni-0000000000000dead")
    counters = control.counters()
    assert counters == ec2_server.counters()
    assert counters["DescribeVpcs"].calls == 1
    assert (counters["DeleteNetworkInterface"].calls, counters["DeleteNetworkInterface"].errors) == (1, 1)
    control.reset_counters()
    assert control.counters() == {}


@pytest.mark.parametrize(
    ("method", "route", "body", "status", "named"),
    [
        ("POST", "faults", b'{"action": "DescribeVpcs", "count": 0}', 400, "count"),
        ("POST", "faults", b'{"action": "DescribeVpcs", "colour": "red"}', 400, "colour"),
        ("POST", "faults", b'{"code": "InternalError"}', 400, "action"),
        ("POST", "faults", b"{not json", 400, "not JSON"),
        ("PUT", "latency", b'{"profile": "slowish"}', 400, "slowish"),
        ("PUT", "latency", b'{"delays_s": {"DescribeVpcs": -1}}', 400, "delays_s"),
        ("PUT", "throttle", b'{"buckets": {"mutating": {"capacity": "lots"}}}', 400, "buckets.mutating"),
        ("POST", "faults/seed", b'{"seed": "x"}', 400, "seed"),
        ("GET", "nowhere", None, 404, "nowhere"),
        ("PATCH", "faults", b"{}", 405, "PATCH"),
    ],
)
def test_bad_control_requests_are_refused_with_a_reason(
    ec2_server: Ec2Server, method: str, route: str, body: bytes | None, status: int, named: str
) -> None:
    got_status, answer = _raw(ec2_server, method, route, body)
    assert got_status == status
    assert named in answer["error"]
    assert ec2_server.faults.rules() == []  # nothing half-applied


def test_the_client_raises_the_servers_reason(control: Ec2ControlClient) -> None:
    with pytest.raises(ControlError) as excinfo:
        control.inject_fault("DescribeVpcs", "InternalError", probability=2)
    assert excinfo.value.status == 400
    assert "probability" in excinfo.value.reason
