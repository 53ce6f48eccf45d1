"""The fleet simulator agrees with real ipamd processes: the same 30-node fleet scenario, once as ipamd
processes against the local cloud over HTTP (a compressed clock, the account's buckets shrunk to what 30
of 2,000 nodes would get, so these nodes meet the whole fleet's contention) and once in the simulator in
virtual time, with the same buckets and the real run's wall-clock constants stretched to cluster time.

Tolerance: the time until every pod has an address, and the EC2 calls sent, within 25 % of the real
run's. The real run's timing jitters with the machine's load (a few cluster seconds per request); the
comparison is about the fleet's course, not the last second.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests import quiet
from vpccni.benchmarks.fleet_real import account_buckets, run_real
from vpccni.sim.fleet import run_fleet
from vpccni.sim.policies import VPCCNI
from vpccni.sim.scenario import FleetSpec
from vpccni.sim.summary import summarize

NODES, FLEET, SCALE = 30, 2000, 30.0
TOLERANCE = 0.25


@pytest.fixture(scope="module")
def both() -> tuple[dict[str, object], dict[str, object]]:
    with quiet("ipamd"):
        spec = FleetSpec(nodes=NODES, seed=3)
        share = NODES / FLEET
        real = run_real(spec, scale=SCALE, share=share)
        policy = dataclasses.replace(VPCCNI, wall_factor=SCALE)
        sim = summarize(run_fleet(spec, policy, profile="fast", throttle=account_buckets(1.0, share)), spec)
        print(f"\nreal: {real['all_addressed_s']} s, {real['calls']} calls ({real['throttled']} throttled), "
              f"{real['wall_s']} s wall\nsim:  {sim['all_addressed_s']} s, {sim['calls']} calls "
              f"({sim['throttled']} throttled), {sim['wall_s']} s wall")
    return real, sim


def test_every_pod_got_an_address_in_both(both) -> None:
    real, sim = both
    assert real["addressed"] == real["pods"] == sim["pods"] and sim["adds_failed_for_good"] == 0


def test_the_time_to_every_address_agrees(both) -> None:
    real, sim = both
    assert abs(sim["all_addressed_s"] - real["all_addressed_s"]) <= TOLERANCE * real["all_addressed_s"]


def test_the_calls_agree(both) -> None:
    real, sim = both
    assert abs(sim["calls"] - real["calls"]) <= TOLERANCE * real["calls"]
