"""The retry policy (vpccni.cloud.retry.CallRunner): what is retried, how often, and what is observed.

Requests here are plain callables that raise the botocore exceptions EC2 would cause, so the real
runner, budget, tenacity and error mapping run; only the network is absent (the provider tests in
tests/cloud drive the same path against the local cloud).
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from vpccni.cloud.aws.provider import aws_runner
from vpccni.cloud.budget import ActionClass, ApiBudget, BucketSettings, BudgetSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.errors import (
    CloudError,
    CloudInvalidRequest,
    CloudThrottled,
    CloudTimeout,
    EniLimitExceeded,
    SubnetFull,
)


def client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "Op",
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Script:
    """A request that fails with the given exceptions in turn, then returns ``result``."""

    def __init__(
        self, *failures: Exception, result: object = "ok", cost_s: float = 0.0, clock: FakeClock
    ) -> None:
        self.failures = list(failures)
        self.result = result
        self.calls = 0
        self.cost_s = cost_s
        self.clock = clock

    def __call__(self) -> object:
        self.calls += 1
        self.clock.now += self.cost_s
        if self.failures:
            raise self.failures.pop(0)
        return self.result


def make_runner(
    clock: FakeClock, *, attempts: int = 5, total_s: float = 60.0, budget: ApiBudget | None = None
) -> tuple[CallRunner, InMemoryObserver]:
    observer = InMemoryObserver()
    runner = aws_runner(
        retry=RetrySettings(
            max_attempts=attempts, max_total_s=total_s, backoff_base_s=0.01, backoff_max_s=0.05
        ),
        budget=budget or ApiBudget(BudgetSettings.unlimited(), clock=clock, sleep=clock.sleep),
        observer=observer,
        clock=clock,
        sleep=clock.sleep,
    )
    return runner, observer


@pytest.mark.parametrize(
    "failure",
    [
        client_error("RequestLimitExceeded", 503),
        client_error("InternalError", 500),
        client_error("Unavailable", 503),
        ReadTimeoutError(endpoint_url="http://x/"),
    ],
    ids=["throttle", "internal", "unavailable", "timeout"],
)
def test_retryable_errors_are_retried_until_success(failure: Exception):
    clock = FakeClock()
    runner, observer = make_runner(clock)
    request = Script(failure, failure, clock=clock, result={"AttachmentId": "a-1"})
    assert runner.run("AttachNetworkInterface", request) == {"AttachmentId": "a-1"}
    assert request.calls == 3
    assert observer.calls()["AttachNetworkInterface"] == 3
    assert [r.error_code is None for r in observer.records] == [False, False, True]
    # Back-off happened between attempts, within the configured caps.
    assert len(clock.slept) == 2
    assert all(0 <= s <= 0.05 for s in clock.slept)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (client_error("AttachmentLimitExceeded"), EniLimitExceeded),
        (client_error("InsufficientFreeAddressesInSubnet"), SubnetFull),
        (client_error("InvalidParameterValue"), CloudInvalidRequest),
    ],
)
def test_permanent_errors_are_not_retried(failure: Exception, expected: type[CloudError]):
    clock = FakeClock()
    runner, observer = make_runner(clock)
    request = Script(failure, clock=clock)
    with pytest.raises(expected) as info:
        runner.run("AttachNetworkInterface", request)
    assert request.calls == 1
    assert info.value.__cause__ is failure
    assert clock.slept == []
    assert observer.errors() == {("AttachNetworkInterface", info.value.code): 1}


def test_attempts_are_bounded_and_the_last_error_surfaces():
    clock = FakeClock()
    runner, observer = make_runner(clock, attempts=3)
    request = Script(*[client_error("RequestLimitExceeded", 503)] * 10, clock=clock)
    with pytest.raises(CloudThrottled):
        runner.run("AssignPrivateIpAddresses", request)
    assert request.calls == 3
    assert observer.throttled() == 3


def test_total_time_is_bounded():
    clock = FakeClock()
    runner, _ = make_runner(clock, attempts=100, total_s=10.0)
    # Each attempt takes 3 s (a slow timeout): attempts start at 0, 3+, 6+, 9+ and then time is up.
    request = Script(*[ReadTimeoutError(endpoint_url="http://x/")] * 100, clock=clock, cost_s=3.0)
    with pytest.raises(CloudTimeout):
        runner.run("DescribeSubnets", request)
    assert request.calls == 4


def test_throttles_slow_the_budget_down():
    clock = FakeClock()
    budget = ApiBudget(
        BudgetSettings(
            mutating=BucketSettings(capacity=10, rate=4.0, min_rate=0.5),
            describe=BucketSettings(capacity=10, rate=4.0, min_rate=0.5),
        ),
        clock=clock,
        sleep=clock.sleep,
    )
    runner, _ = make_runner(clock, budget=budget)
    request = Script(client_error("RequestLimitExceeded", 503), clock=clock)
    runner.run("AssignPrivateIpAddresses", request)
    state = budget.state()
    assert state[ActionClass.MUTATING].rate == 2.0
    assert state[ActionClass.MUTATING].throttles == 1
    assert state[ActionClass.DESCRIBE].rate == 4.0
    # The retry went out only when the drained bucket had refilled one token at the halved rate:
    # back-off and budget wait together are exactly 1 / (2 tokens/s).
    assert clock.now == pytest.approx(0.5)


def test_server_errors_do_not_count_as_throttles():
    clock = FakeClock()
    runner, observer = make_runner(clock)
    runner.run("CreateTags", Script(client_error("InternalError", 500), clock=clock))
    assert observer.throttled() == 0
    assert runner.budget.state()[ActionClass.MUTATING].throttles == 0


def test_resync_turns_a_permanent_error_after_a_lost_attempt_into_success():
    clock = FakeClock()
    runner, _ = make_runner(clock)
    seen: list[CloudError] = []

    def resync(err: CloudError) -> str | None:
        seen.append(err)
        return "attach-from-describe"

    # First attempt times out (EC2 acted anyway); the retry is refused because it is already attached.
    request = Script(
        ReadTimeoutError(endpoint_url="http://x/"), client_error("InvalidParameterValue"), clock=clock
    )
    assert runner.run("AttachNetworkInterface", request, resync=resync) == "attach-from-describe"
    assert [e.code for e in seen] == ["InvalidParameterValue"]


def test_resync_is_not_consulted_without_an_ambiguous_attempt():
    clock = FakeClock()
    runner, _ = make_runner(clock)
    calls: list[CloudError] = []

    def resync(err: CloudError) -> str | None:
        calls.append(err)
        return "never"

    request = Script(client_error("RequestLimitExceeded"), client_error("InvalidParameterValue"), clock=clock)
    with pytest.raises(CloudInvalidRequest):
        runner.run("AttachNetworkInterface", request, resync=resync)
    assert calls == []  # a throttle is a clean refusal: nothing can have happened


def test_resync_that_finds_nothing_keeps_the_error():
    clock = FakeClock()
    runner, _ = make_runner(clock)
    request = Script(client_error("InternalError", 500), client_error("InvalidParameterValue"), clock=clock)
    with pytest.raises(CloudInvalidRequest):
        runner.run("UnassignPrivateIpAddresses", request, resync=lambda err: None)


def test_bugs_in_the_request_are_not_retried_or_mapped():
    clock = FakeClock()
    runner, observer = make_runner(clock)

    def broken() -> object:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        runner.run("DescribeSubnets", broken)
    assert observer.errors() == {("DescribeSubnets", "KeyError"): 1}


def test_budget_exhaustion_is_retried_after_back_off():
    clock = FakeClock()
    budget = ApiBudget(
        BudgetSettings(
            mutating=BucketSettings(capacity=1, rate=1.0, min_rate=1.0),
            describe=BucketSettings(capacity=1, rate=1.0, min_rate=1.0),
            max_wait_s=0.0,  # never wait inside acquire: refuse instead
        ),
        clock=clock,
        sleep=clock.sleep,
    )
    runner, observer = make_runner(clock, budget=budget, attempts=1000)
    runner.run("CreateTags", Script(clock=clock))
    runner.run("CreateTags", Script(clock=clock))  # refused locally until the tenacity back-off refills
    assert observer.calls()["CreateTags"] == 2  # refusals never reached the cloud, so were not observed
    assert budget.state()[ActionClass.MUTATING].refusals > 0
