"""vpccni tune's forecast is what actually happens: churn recorded by a real ipamd process, forecast for two
other settings by replaying that ipamd's journal in the simulator, then each setting run for real (real
ipamd processes over the local cloud, the same trace, bench churn's harness) — the forecasts must fall
within the tolerance of what the runs measured.

Tolerance: EC2 mutating calls within 20 % + 3 calls of the run's; mean idle addresses within 25 % + 2. The
runs are on a compressed clock (100 cluster seconds per wall second, ipamd's timers with it), so a run's
timing jitter is a few cluster seconds: it moves when an address is released, not how many calls are made.
"""

from __future__ import annotations

import pytest

from ipamd.state.journal import parse
from tests import quiet
from vpccni.benchmarks.churn import scaled_throttling, scenario
from vpccni.benchmarks.churn_trace import TimeScale, churn_trace
from vpccni.localcloud import LocalCloud
from vpccni.sim.forecast import forecast
from vpccni.sim.replay import replay

SCALE = TimeScale(100.0)
SETTINGS = (("WARM_IP_TARGET=2", {"WARM_IP_TARGET": "2"}),
            ("WARM_IP_TARGET=5,MINIMUM_IP_TARGET=10", {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "10"}))
CALLS_TOLERANCE = (0.20, 3)
IDLE_TOLERANCE = (0.25, 2.0)


def within(forecast_value: float, actual: float, tolerance: tuple[float, float]) -> bool:
    relative, absolute = tolerance
    return abs(forecast_value - actual) <= relative * actual + absolute


@pytest.fixture(scope="module")
def runs() -> dict[str, object]:
    with quiet("ipamd"):
        trace = churn_trace(7, 150, 20, 120)
        with LocalCloud(profile="fast", seed=7, throttle=scaled_throttling(SCALE)) as cloud:
            recorded = scenario(cloud, trace, SCALE, "m5.xlarge", "recorded (defaults)", {},
                                keep_journal=True)
            actual = {name: scenario(cloud, trace, SCALE, "m5.xlarge", name, settings)
                      for name, settings in SETTINGS}
        journal = parse(str(recorded["journal"]))
        forecasts = {name: forecast(name, replay(journal, settings, profile="fast"))
                     for name, settings in SETTINGS}
    return {"journal": journal, "recorded": recorded, "actual": actual, "forecasts": forecasts}


def test_the_journal_holds_the_whole_trace(runs) -> None:
    journal = runs["journal"]
    adds = {e.pod for e in journal.events if e.kind == "A"}
    dels = {e.pod for e in journal.events if e.kind == "D"}
    assert len(adds) == 150 and dels == adds
    assert journal.header["instance_type"] == "m5.xlarge"
    assert journal.header["settings"]["VPCCNI_POOL_LOOP_PERIOD"] == "0.05", "the run's compressed timers"


@pytest.mark.parametrize("name", [name for name, _ in SETTINGS])
def test_the_forecast_matches_the_run(runs, name: str) -> None:
    predicted, actual = runs["forecasts"][name], runs["actual"][name]
    print(f"\n{name}: forecast {predicted.mutating_calls} mutating calls, idle {predicted.idle_mean}; "
          f"actual {actual['mutating_calls']} mutating calls, idle {actual['idle_addresses']['mean']}")
    assert actual["adds"]["failed_for_good"] == 0 and predicted.never_addressed == 0
    assert within(predicted.mutating_calls, actual["mutating_calls"], CALLS_TOLERANCE)
    assert within(predicted.idle_mean, actual["idle_addresses"]["mean"], IDLE_TOLERANCE)
