"""The fleet budget's ledger: reservations queue at the bucket's rate; the wrapper reserves before every
call, re-reads on a lost compare-and-swap, and refuses a queue longer than its limit."""

from __future__ import annotations

import pytest

from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.fleetbudget import FleetBudget, Rate, backlog, decode, encode, reserve
from vpccni.errors import CloudThrottled

RATE = Rate(capacity=2, refill_per_s=5)


@pytest.mark.parametrize(("ledger", "now", "tokens", "wait"), [
    ({}, 100.0, 1.0, 0.0),  # a new ledger is full
    ({"b": (0.0, 100.0)}, 100.0, -1.0, 0.2),  # empty: one refill period
    ({"b": (-4.0, 100.0)}, 100.0, -5.0, 1.0),  # four queued before: five periods
    ({"b": (-4.0, 100.0)}, 101.0, 0.0, 0.0),  # a second later the queue has drained
    ({"b": (2.0, 0.0)}, 100.0, 1.0, 0.0),  # never above capacity
])
def test_a_reservation_takes_a_token_and_waits_for_the_queue(ledger, now, tokens, wait) -> None:
    updated, waited = reserve(ledger, "b", RATE, now)
    assert updated["b"][0] == pytest.approx(tokens) and updated["b"][1] == now
    assert waited == pytest.approx(wait)
    assert backlog(ledger, "b", RATE, now) == pytest.approx(wait)


def test_the_ledger_round_trips_and_a_foreign_one_reads_as_full() -> None:
    ledger = {"mutating": (-3.5, 1700000000.25), "DescribeInstances": (7.0, 1700000001.0)}
    assert decode(encode(ledger)) == ledger
    for text in (None, "", "not json", '{"version": 9, "buckets": {}}', '{"version": 1}'):
        assert decode(text) == {}


class _Store:
    """An in-memory compare-and-swap store that can lose the next ``lose`` writes to another writer."""

    def __init__(self, lose: int = 0) -> None:
        self.text: str | None = None
        self.version = 0
        self.lose = lose

    def read(self) -> tuple[str | None, str | None]:
        return self.text, None if self.text is None else str(self.version)

    def write(self, text: str, version: str | None) -> bool:
        if self.lose:
            self.lose -= 1
            self.version += 1  # someone else wrote meanwhile
            return False
        if version != (None if self.text is None else str(self.version)):
            return False
        self.text, self.version = text, self.version + 1
        return True


def _budget(store: _Store, clock: list[float], slept: list[float], max_wait_s: float = 3600.0) -> FleetBudget:
    local = ApiBudget(BudgetSettings.unlimited(), clock=lambda: clock[0], sleep=slept.append)
    return FleetBudget(local, store, {"mutating": RATE}, lambda action: "mutating", clock=lambda: clock[0],
                       sleep=slept.append, max_wait_s=max_wait_s)


def test_calls_beyond_the_bucket_wait_their_turn() -> None:
    store, clock, slept = _Store(), [1000.0], list[float]()
    budget = _budget(store, clock, slept)
    waits = [budget.acquire("AttachNetworkInterface") for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.2, 0.4, 0.6]) and slept == pytest.approx([0.2, 0.4, 0.6])
    assert budget.backlog("AttachNetworkInterface") == pytest.approx(0.8)
    assert budget.reservations == 5


def test_a_lost_compare_and_swap_is_read_again() -> None:
    store, clock, slept = _Store(lose=2), [1000.0], list[float]()
    budget = _budget(store, clock, slept)
    assert budget.acquire("AttachNetworkInterface") == 0.0
    assert budget.conflicts == 2 and len(slept) == 2 and budget.reservations == 1


def test_a_queue_longer_than_the_limit_is_refused_and_takes_nothing() -> None:
    store, clock, slept = _Store(), [1000.0], list[float]()
    budget = _budget(store, clock, slept, max_wait_s=0.3)
    for _ in range(3):
        budget.acquire("AttachNetworkInterface")
    before = store.text
    with pytest.raises(CloudThrottled) as refused:
        budget.acquire("AttachNetworkInterface")
    assert refused.value.code == "FleetBudgetExhausted" and store.text == before
