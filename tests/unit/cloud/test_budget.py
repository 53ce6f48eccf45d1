"""The API budget's pure logic on a fake clock: reservations, AIMD, refusals, thread safety."""

from __future__ import annotations

import threading

import pytest

from vpccni.cloud.budget import (
    BUDGET_EXHAUSTED,
    ActionClass,
    ApiBudget,
    BucketSettings,
    BudgetSettings,
    TokenBucket,
    action_class,
)
from vpccni.errors import CloudThrottled, RetryableError


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bucket(clock: FakeClock, **overrides: float) -> TokenBucket:
    values: dict[str, float] = {
        "capacity": 4,
        "rate": 2.0,
        "min_rate": 0.25,
        "increase_step": 0.5,
        "quiet_interval_s": 10.0,
        "decrease_cooldown_s": 1.0,
    }
    values.update(overrides)
    return TokenBucket(BucketSettings(**values), clock=clock)


def test_full_bucket_serves_a_burst_then_paces_at_the_refill_rate():
    clock = FakeClock()
    b = bucket(clock)
    assert [b.reserve(60) for _ in range(4)] == [0, 0, 0, 0]
    # Reservations queue up: each further caller waits one more refill period (rate 2/s -> 0.5 s).
    assert [b.reserve(60) for _ in range(3)] == pytest.approx([0.5, 1.0, 1.5])
    clock.advance(1.5)  # the promised tokens have now been produced and are spoken for
    assert b.state().tokens == pytest.approx(0.0)
    assert b.reserve(60) == pytest.approx(0.5)


def test_refill_never_exceeds_capacity():
    clock = FakeClock()
    b = bucket(clock)
    b.reserve(60)
    clock.advance(3600)
    assert b.state().tokens == 4
    assert [b.reserve(60) for _ in range(5)] == pytest.approx([0, 0, 0, 0, 0.5])


def test_throttle_halves_the_rate_and_drains_the_bucket():
    clock = FakeClock()
    b = bucket(clock)
    b.on_throttle()
    state = b.state()
    assert state.rate == 1.0
    assert state.tokens == 0.0
    assert state.throttles == 1
    assert b.reserve(60) == pytest.approx(1.0)  # one token at the new rate of 1/s


def test_throttles_in_one_burst_count_as_one_decrease():
    clock = FakeClock()
    b = bucket(clock)
    for _ in range(5):
        b.on_throttle()
        clock.advance(0.1)
    assert b.state().rate == 1.0
    assert b.state().throttles == 5
    clock.advance(1.0)  # past the cooldown: the next throttle decreases again
    b.on_throttle()
    assert b.state().rate == 0.5


def test_decrease_stops_at_the_floor():
    clock = FakeClock()
    b = bucket(clock)
    for _ in range(10):
        b.on_throttle()
        clock.advance(2.0)
    assert b.state().rate == 0.25


def test_quiet_intervals_add_rate_back_up_to_the_configured_rate():
    clock = FakeClock()
    b = bucket(clock)
    b.on_throttle()
    clock.advance(2.0)
    b.on_throttle()  # rate 0.5
    assert b.state().rate == 0.5
    clock.advance(9.9)
    assert b.state().rate == 0.5  # not a full quiet interval yet
    clock.advance(0.1)
    assert b.state().rate == 1.0
    clock.advance(25.0)  # two more intervals (and a half)
    assert b.state().rate == 2.0
    clock.advance(100.0)
    assert b.state().rate == 2.0  # capped at the configured rate


def test_a_throttle_restarts_the_quiet_interval():
    clock = FakeClock()
    b = bucket(clock)
    b.on_throttle()  # 1.0
    clock.advance(8.0)
    b.on_throttle()  # 0.5, and the 8 quiet seconds are forgotten
    clock.advance(8.0)
    assert b.state().rate == 0.5
    clock.advance(2.0)
    assert b.state().rate == 1.0


def test_reservation_beyond_max_wait_is_refused_and_takes_nothing():
    clock = FakeClock()
    b = bucket(clock, capacity=1, rate=0.1, min_rate=0.1)
    assert b.reserve(5) == 0
    assert b.reserve(5) is None  # would need 10 s
    assert b.state().refusals == 1
    assert b.state().tokens == pytest.approx(0.0)  # the refused caller took no token
    assert b.reserve(10) == pytest.approx(10.0)


def test_budget_acquire_sleeps_once_for_the_exact_wait():
    clock = FakeClock()
    settings = BudgetSettings(
        mutating=BucketSettings(capacity=2, rate=1.0, min_rate=0.1),
        describe=BucketSettings(capacity=1, rate=4.0, min_rate=0.1),
        max_wait_s=30,
    )
    budget = ApiBudget(settings, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        budget.acquire("AssignPrivateIpAddresses")
    # two free, then one sleep per caller; each sleep is exactly the refill time (no polling).
    assert clock.slept == pytest.approx([1.0, 1.0])
    budget.acquire("DescribeNetworkInterfaces")  # the describe bucket is independent and full
    assert clock.slept == pytest.approx([1.0, 1.0])


def test_budget_refusal_is_a_retryable_throttle_naming_the_class():
    clock = FakeClock()
    settings = BudgetSettings(
        mutating=BucketSettings(capacity=1, rate=0.01, min_rate=0.01),
        describe=BucketSettings(capacity=1, rate=1, min_rate=0.1),
        max_wait_s=1.0,
    )
    budget = ApiBudget(settings, clock=clock, sleep=clock.sleep)
    budget.acquire("CreateNetworkInterface")
    with pytest.raises(CloudThrottled) as info:
        budget.acquire("AttachNetworkInterface")
    assert info.value.code == BUDGET_EXHAUSTED
    assert info.value.action == "AttachNetworkInterface"
    assert "mutating" in str(info.value)
    assert isinstance(info.value, RetryableError)


def test_budget_throttle_affects_only_its_action_class():
    clock = FakeClock()
    budget = ApiBudget(clock=clock, sleep=clock.sleep)
    before = budget.state()
    budget.on_throttle("AssignPrivateIpAddresses")
    after = budget.state()
    assert after[ActionClass.MUTATING].rate == before[ActionClass.MUTATING].rate / 2
    assert after[ActionClass.DESCRIBE] == before[ActionClass.DESCRIBE]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("DescribeNetworkInterfaces", ActionClass.DESCRIBE),
        ("DescribeInstanceTypes", ActionClass.DESCRIBE),
        ("GetMetadata", ActionClass.DESCRIBE),
        ("AssignPrivateIpAddresses", ActionClass.MUTATING),
        ("CreateTags", ActionClass.MUTATING),
        ("ModifyNetworkInterfaceAttribute", ActionClass.MUTATING),
        ("DeleteNetworkInterface", ActionClass.MUTATING),
    ],
)
def test_action_classes(action: str, expected: ActionClass):
    assert action_class(action) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("capacity", 0), ("rate", 0), ("min_rate", 5.0), ("decrease_factor", 1.0), ("quiet_interval_s", 0)],
)
def test_bad_bucket_settings_name_the_field(field: str, value: float):
    values: dict[str, float] = {"capacity": 4, "rate": 2.0, "min_rate": 0.25}
    values[field] = value
    with pytest.raises(ValueError, match=field):
        BucketSettings(**values)


def test_concurrent_reservations_never_hand_out_a_token_twice():
    clock = FakeClock()  # frozen time: every wait is a pure function of how many came before
    b = bucket(clock, capacity=5, rate=1.0, min_rate=0.5)
    waits: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(25):
            w = b.reserve(1e9)
            assert w is not None
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(waits) == pytest.approx([0.0] * 5 + [float(k) for k in range(1, 196)])


def _simulate_fleet(nodes: int, seconds: float, bucket_settings: BucketSettings) -> tuple[int, int]:
    """Nodes that each call as fast as their own budget allows, against one shared account bucket
    (EC2's mutating bucket: 50 burst, 5/s). Returns (throttled, succeeded) over the last half."""
    clock = FakeClock()
    account_tokens = 50.0
    account_rate = 5.0
    last = clock.now
    buckets = [TokenBucket(bucket_settings, clock=clock) for _ in range(nodes)]
    next_at = [clock.now + i * 0.01 for i in range(nodes)]
    throttled = succeeded = 0
    end = clock.now + seconds
    while True:
        node = min(range(nodes), key=next_at.__getitem__)
        clock.now = next_at[node]
        if clock.now >= end:
            return throttled, succeeded
        account_tokens = min(50.0, account_tokens + (clock.now - last) * account_rate)
        last = clock.now
        counted = clock.now >= end - seconds / 2
        if account_tokens >= 1:
            account_tokens -= 1
            succeeded += counted
        else:
            buckets[node].on_throttle()
            throttled += counted
        wait = buckets[node].reserve(1e9)
        assert wait is not None
        next_at[node] = clock.now + max(wait, 0.001)


def test_aimd_makes_a_fleet_back_off_together():
    # 20 nodes whose configured rates add up to 8x what the account bucket refills.
    aimd = BucketSettings(capacity=5, rate=2.0, min_rate=0.05, increase_step=0.05)
    fixed = BucketSettings(capacity=5, rate=2.0, min_rate=2.0, increase_step=0.05)  # no decrease possible
    throttled_aimd, ok_aimd = _simulate_fleet(20, 600.0, aimd)
    throttled_fixed, ok_fixed = _simulate_fleet(20, 600.0, fixed)
    # Without decrease most calls are throttled; with AIMD throttles are a small fraction ...
    assert throttled_fixed > ok_fixed
    assert throttled_aimd * 5 < ok_aimd
    assert throttled_aimd * 10 < throttled_fixed
    # ... while the fleet still uses most of what the account can serve (5/s over the last 300 s).
    assert ok_aimd >= 0.9 * 5.0 * 300


def test_budget_from_the_four_config_numbers_matches_the_defaults():
    # VPCCNI_API_MUTATING_BUCKET/REFILL and VPCCNI_API_DESCRIBE_BUCKET/REFILL defaults: 5, 0.5, 10, 2.0.
    derived = BudgetSettings.from_sizes(
        mutating_capacity=5, mutating_rate=0.5, describe_capacity=10, describe_rate=2.0
    )
    assert derived == BudgetSettings()
    with pytest.raises(ValueError, match="rate"):
        BudgetSettings.from_sizes(
            mutating_capacity=5, mutating_rate=0, describe_capacity=10, describe_rate=2.0
        )
