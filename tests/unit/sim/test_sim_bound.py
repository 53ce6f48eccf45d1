"""The bound and the calls a node needs: tables of cases (pure arithmetic over the documented buckets)."""

from __future__ import annotations

import math

import pytest

from vpccni.cloud.aws.buckets import DOCUMENTED, MUTATING, NON_MUTATING, UNFILTERED_NON_MUTATING, bucket_of
from vpccni.sim.bound import BucketLoad, bound, enis_needed, fleet_calls, node_calls


@pytest.mark.parametrize(("action", "filtered", "bucket"), [
    ("AssignPrivateIpAddresses", True, "AssignPrivateIpAddresses"),
    ("CreateNetworkInterface", True, "CreateNetworkInterface"),
    ("DeleteNetworkInterface", True, "DeleteNetworkInterface"),
    ("AttachNetworkInterface", True, MUTATING),
    ("ModifyNetworkInterfaceAttribute", True, MUTATING),
    ("CreateTags", True, MUTATING),
    ("DescribeNetworkInterfaces", True, NON_MUTATING),
    ("DescribeNetworkInterfaces", False, UNFILTERED_NON_MUTATING),
])
def test_each_action_draws_on_its_documented_bucket(action: str, filtered: bool, bucket: str) -> None:
    assert bucket_of(action, filtered=filtered) == bucket


@pytest.mark.parametrize(("calls", "capacity", "refill", "seconds"), [
    (0, 50, 5, 0.0),
    (50, 50, 5, 0.0),  # a full bucket serves its capacity at once
    (51, 50, 5, 0.2),
    (1050, 50, 5, 200.0),
    (10, 5, 0, math.inf),  # never refilled
])
def test_a_bucket_serves_its_capacity_then_one_call_per_refill(calls: int, capacity: float, refill: float,
                                                               seconds: float) -> None:
    assert BucketLoad("b", calls, capacity, refill).seconds == seconds


def test_the_bound_is_the_slowest_bucket_and_names_it() -> None:
    # 1,050 attach+modify calls share the mutating bucket (200 s); 600 creates have their own (100 s).
    b = bound({"AttachNetworkInterface": 525, "ModifyNetworkInterfaceAttribute": 525,
               "CreateNetworkInterface": 600, "DescribeInstances": 2100})
    assert b.binding == MUTATING and b.seconds == pytest.approx(200.0)
    assert {load.bucket: load.calls for load in b.loads} == {
        MUTATING: 1050, "CreateNetworkInterface": 600, NON_MUTATING: 2100}


def test_no_calls_need_no_time() -> None:
    assert bound({}).seconds == 0.0 and bound({"AssignPrivateIpAddresses": 3}).binding == ""


@pytest.mark.parametrize(("pods", "per_eni", "max_enis", "warm", "enis"), [
    (0, 14, 4, 0, 1),  # the primary is always there
    (14, 14, 4, 0, 1),
    (15, 14, 4, 0, 2),
    (30, 14, 4, 0, 3),
    (30, 14, 4, 1, 4),  # WARM_ENI_TARGET=1: one whole ENI free on top
    (27, 9, 3, 1, 3),  # ... never past the type's ENIs
    (30, 29, 8, 1, 3),
])
def test_enis_needed(pods: int, per_eni: int, max_enis: int, warm: int, enis: int) -> None:
    assert enis_needed(pods, per_eni, max_enis, warm_enis=warm) == enis


def test_a_node_calls_describe_three_times_at_start_assign_once_and_five_times_per_new_eni() -> None:
    assert node_calls(1) == {"DescribeInstances": 1, "DescribeNetworkInterfaces": 1, "DescribeSubnets": 1,
                             "AssignPrivateIpAddresses": 1}
    three = node_calls(3)
    assert three["CreateNetworkInterface"] == 2 and three["AttachNetworkInterface"] == 2
    assert three["ModifyNetworkInterfaceAttribute"] == 2 and three["DescribeInstances"] == 3
    assert fleet_calls([1, 3]) == node_calls(1) + three


def test_the_documented_table_has_the_buckets_the_cni_meets() -> None:
    assert (DOCUMENTED[MUTATING].capacity, DOCUMENTED[MUTATING].refill_per_s) == (50, 5)
    assert (DOCUMENTED[NON_MUTATING].capacity, DOCUMENTED[NON_MUTATING].refill_per_s) == (100, 20)
    assert (DOCUMENTED[UNFILTERED_NON_MUTATING].capacity, DOCUMENTED[UNFILTERED_NON_MUTATING].refill_per_s) \
        == (50, 10)
    assert all((DOCUMENTED[a].capacity, DOCUMENTED[a].refill_per_s) == (100, 5) for a in (
        "AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "CreateNetworkInterface",
        "DeleteNetworkInterface"))
