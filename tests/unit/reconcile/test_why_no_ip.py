"""'Why no IP' in the two states that look permanent or quiet but are neither: a cloud call that hangs, and
every address cooling down at a limit. Pure: a datastore, a GrowthStatus and the calls under way, on
clocks the test moves; plus the runner keeping the calls under way as it sends them."""

from __future__ import annotations

import pytest

from ipamd.reconcile.status import GrowthStatus
from ipamd.state.datastore import AllocationKey, Datastore
from vpccni.cloud.observe import InFlightCalls
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.errors import CloudTimeout
from vpccni.wire.protocol import NoIpReason

COOLDOWN_S = 30.0


class Clocks:
    """Wall and monotonic time, moved together by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clocks:
    return Clocks()


def node(clock: Clocks, addresses: int) -> tuple[Datastore, GrowthStatus, InFlightCalls]:
    datastore = Datastore(cooldown_s=COOLDOWN_S, clock=clock)
    datastore.add_eni("eni-1", 0, True)
    datastore.add_cidrs("eni-1", [f"10.0.0.{10 + i}/32" for i in range(addresses)])
    in_flight = InFlightCalls(clock=clock)
    status = GrowthStatus(datastore, in_flight=in_flight, clock=clock, monotonic=clock)
    status.started = True
    return datastore, status, in_flight


def take_all(datastore: Datastore, count: int) -> list[AllocationKey]:
    keys = [AllocationKey("vpccni", f"c{i}", "eth0") for i in range(count)]
    for key in keys:
        assert datastore.assign(key) is not None
    assert datastore.free_count() == 0
    return keys


# --- every address cooling --------------------------------------------------------------------------


def test_at_the_eni_limit_with_addresses_cooling_the_answer_is_cooling_and_says_when(clock: Clocks) -> None:
    datastore, status, _ = node(clock, 3)
    keys = take_all(datastore, 3)
    status.block(NoIpReason.ENI_LIMIT, "every ENI is full and the node has 1 of 1 ENIs")
    assert status.why_no_ip()[0] is NoIpReason.ENI_LIMIT, "nothing cools: the limit is the answer"

    datastore.release(keys[0])
    clock.now += 10
    datastore.release(keys[1])
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.COOLING
    assert "2 released address(es) come back after IP_COOLDOWN_PERIOD=30s" in message
    assert "the first in 20s (at " in message
    assert "until then: every ENI is full" in message, "what keeps the pool from growing is still said"


@pytest.mark.parametrize(
    "reason",
    [NoIpReason.SUBNET_FULL, NoIpReason.MAX_PODS, NoIpReason.UNAUTHORIZED, NoIpReason.PROVISIONING_DISABLED],
)
def test_any_block_an_operator_must_lift_is_only_early_while_an_address_cools(
    clock: Clocks, reason: NoIpReason
) -> None:
    datastore, status, _ = node(clock, 1)
    datastore.release(take_all(datastore, 1)[0])
    status.block(reason, "blocked")
    assert status.why_no_ip()[0] is NoIpReason.COOLING


def test_a_quiet_pool_with_everything_cooling_says_cooling_not_growing(clock: Clocks) -> None:
    datastore, status, _ = node(clock, 2)
    for key in take_all(datastore, 2):
        datastore.release(key)
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.COOLING and "the first in 30s" in message


def test_a_transient_reason_stays_and_mentions_the_cooldown(clock: Clocks) -> None:
    datastore, status, _ = node(clock, 1)
    datastore.release(take_all(datastore, 1)[0])
    status.block(NoIpReason.THROTTLED, "EC2 throttled the pool's calls")
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.THROTTLED and "the first in 30s" in message


# --- a cloud call that hangs ------------------------------------------------------------------------


def test_a_call_under_way_is_growing_then_slow_with_its_action_and_age(clock: Clocks) -> None:
    datastore, status, in_flight = node(clock, 1)
    take_all(datastore, 1)
    call = in_flight.begin("AssignPrivateIpAddresses")
    in_flight.sent(call)
    clock.now += 2
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.GROWING
    assert message == ("the pool is waiting for EC2: AssignPrivateIpAddresses, under way for 2s "
                       "(attempt 1 sent 2s ago)")
    clock.now += 8
    in_flight.answered(call, "RequestTimeout")
    in_flight.sent(call)
    clock.now += 3
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.CLOUD_SLOW
    assert message == ("EC2 AssignPrivateIpAddresses, under way for 13s (attempt 2 sent 3s ago; attempt 1 "
                       "ended in RequestTimeout), longer than expected (5s); every pool pass waits for its "
                       "answer")
    in_flight.end(call)
    assert status.why_no_ip()[0] is NoIpReason.GROWING, "answered: back to what the datastore says"


def test_after_a_throttling_burst_a_hang_is_not_reported_as_throttled(clock: Clocks) -> None:
    datastore, status, in_flight = node(clock, 1)
    take_all(datastore, 1)
    call = in_flight.begin("AssignPrivateIpAddresses")
    for _ in range(3):
        in_flight.sent(call)
        status.note_throttle()
        in_flight.answered(call, "RequestLimitExceeded")
        clock.now += 0.5
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.THROTTLED, "between attempts, the throttle is the news"
    assert "throttled 3 call(s) in the last 60s, the last 0s ago" in message
    in_flight.sent(call)  # the fourth attempt hangs
    clock.now += 1
    assert status.why_no_ip()[0] is NoIpReason.GROWING, "an attempt sent after the throttles is out"
    clock.now += 5
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.CLOUD_SLOW and "attempt 4 sent 6s ago" in message
    assert "attempt 3 ended in RequestLimitExceeded" in message


def test_a_slow_call_does_not_hide_a_block_an_operator_must_lift(clock: Clocks) -> None:
    datastore, status, in_flight = node(clock, 1)
    take_all(datastore, 1)
    status.block(NoIpReason.SUBNET_FULL, "the subnet has no free address")
    in_flight.sent(in_flight.begin("DescribeNetworkInterfaces"))
    clock.now += 7
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.SUBNET_FULL
    assert "meanwhile EC2 DescribeNetworkInterfaces, under way for 7s" in message
    assert status.to_json()["cloud_calls_in_flight"] == [
        "DescribeNetworkInterfaces, under way for 7s (attempt 1 sent 7s ago)"
    ]


def test_a_slow_call_is_due_for_the_log_when_it_crosses_the_threshold_then_as_its_age_doubles(
    clock: Clocks,
) -> None:
    in_flight = InFlightCalls(clock=clock)
    call = in_flight.begin("CreateNetworkInterface")
    due = []
    for _ in range(45):
        clock.now += 1
        due += [(round(clock.now - c.began), c.action) for c in in_flight.newly_slow()]
    assert due == [(5, "CreateNetworkInterface"), (10, "CreateNetworkInterface"),
                   (20, "CreateNetworkInterface"), (40, "CreateNetworkInterface")]
    in_flight.end(call)
    assert in_flight.calls() == [] and in_flight.newly_slow() == []


def test_the_runner_keeps_each_call_under_way_from_its_first_wait_to_its_last_answer(clock: Clocks) -> None:
    in_flight = InFlightCalls(clock=clock)
    seen: list[str] = []
    attempts = iter([True, False])

    def request() -> str:
        seen.append(in_flight.calls()[0].describe(clock.now))
        clock.now += 10
        if next(attempts):
            raise TimeoutError("read timed out")
        return "done"

    def map_error(action: str, exc: Exception) -> Exception:
        return CloudTimeout(action, "RequestTimeout", str(exc))

    runner = CallRunner(map_error=map_error, in_flight=in_flight, clock=clock, sleep=lambda s: None,
                        retry=RetrySettings(backoff_base_s=0.0, backoff_max_s=0.0))
    assert runner.run("AssignPrivateIpAddresses", request) == "done"
    assert seen == [
        "AssignPrivateIpAddresses, under way for 0s (attempt 1 sent 0s ago)",
        "AssignPrivateIpAddresses, under way for 10s "
        "(attempt 2 sent 0s ago; attempt 1 ended in RequestTimeout)",
    ]
    assert in_flight.calls() == [], "a call that ended is no longer under way"
