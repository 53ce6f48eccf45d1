"""The fleet scenario is plain seeded data: proportions, demands capped per type, arrivals in the window."""

from __future__ import annotations

from collections import Counter

import pytest

from vpccni.config.limits import require
from vpccni.sim.scenario import FleetSpec, SubnetPlan, demand_for, fleet_plan, pod_addresses
from vpccni.sim.summary import needed_bounds, percentile, verdict


def test_the_mix_and_zones_are_split_in_their_proportions() -> None:
    plans = fleet_plan(FleetSpec(nodes=100))
    assert Counter(p.zone for p in plans) == {"a": 40, "b": 40, "c": 20}
    assert Counter(p.instance_type for p in plans if p.zone != "c") == {
        "m5.large": 24, "m5.xlarge": 32, "m5.2xlarge": 16, "c5.4xlarge": 8}
    # zone c's node group: no m5.large (its secondary ENIs could not hold its pods with c-nodes full)
    assert Counter(p.instance_type for p in plans if p.zone == "c") == {
        "m5.xlarge": 11, "m5.2xlarge": 6, "c5.4xlarge": 3}
    assert {p.subnet for p in plans if p.zone == "c"} == {"c-nodes"}


def test_the_same_seed_gives_the_same_fleet_and_another_seed_another() -> None:
    assert fleet_plan(FleetSpec(nodes=50, seed=3)) == fleet_plan(FleetSpec(nodes=50, seed=3))
    assert fleet_plan(FleetSpec(nodes=50, seed=3)) != fleet_plan(FleetSpec(nodes=50, seed=4))


@pytest.mark.parametrize(("instance_type", "asked", "demand"), [
    ("m5.large", 30, 27),  # 3 ENIs x 9 pod addresses
    ("m5.xlarge", 30, 30),
    ("c5.4xlarge", 300, 232),
])
def test_demand_is_capped_at_what_the_type_holds(instance_type: str, asked: int, demand: int) -> None:
    assert demand_for(instance_type, asked) == demand == min(asked, pod_addresses(require(instance_type)))


def test_every_pod_arrives_in_the_window() -> None:
    plans = fleet_plan(FleetSpec(nodes=20, arrival_window_s=60))
    assert all(len(p.arrivals) == p.demand and all(0 <= t <= 60 for t in p.arrivals) for p in plans)


def test_a_zone_without_a_node_subnet_is_refused() -> None:
    with pytest.raises(ValueError, match="no subnet that hosts nodes"):
        FleetSpec(zones=(("d", 1),), subnets=(SubnetPlan("x", "10.0.0.0/24", "a", True, True),))


def test_the_bound_with_the_warm_target_is_never_below_the_pods_only_one() -> None:
    warm, pods = needed_bounds(fleet_plan(FleetSpec(nodes=200)))
    assert warm.seconds >= pods.seconds > 0


def test_a_small_fleet_is_bound_by_its_last_arrival_not_its_buckets() -> None:
    plans = fleet_plan(FleetSpec(nodes=5, arrival_window_s=60))
    last = max(t for plan in plans for t in plan.arrivals)
    warm, pods = needed_bounds(plans)
    assert warm.seconds == pods.seconds == last and warm.binding == "pod arrivals"
    big_warm, _ = needed_bounds(fleet_plan(FleetSpec(nodes=2000)))
    assert big_warm.seconds > 60 and big_warm.binding == "mutating"


@pytest.mark.parametrize(("samples", "q", "value"), [([], 50, 0.0), ([3.0], 99, 3.0),
                                                     ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 99, 4)])
def test_percentile_is_nearest_rank(samples: list[float], q: float, value: float) -> None:
    assert percentile(samples, q) == value


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {"adds_failed_for_good": 0, "ratio_to_bound": 1.1, "throttled_fraction": 0.01}
    row.update(over)
    return row


@pytest.mark.parametrize(("row", "met", "words"), [
    (_row(), True, ""),
    (_row(ratio_to_bound=1.3), False, "1.2x"),
    (_row(throttled_fraction=0.4), False, "40% of calls throttled"),
    (_row(adds_failed_for_good=3, ratio_to_bound=None), False, "3 pods never got an address"),
    # a failed pod fails the goal even with a ratio that would pass
    (_row(adds_failed_for_good=1), False, "1 pods never got an address"),
])
def test_the_verdict_never_passes_a_run_with_a_failed_pod(row: dict[str, object], met: bool,
                                                          words: str) -> None:
    ok, misses = verdict(row)
    assert ok is met and words in "; ".join(misses)
