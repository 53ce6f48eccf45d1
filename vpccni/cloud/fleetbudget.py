"""One API budget for a whole fleet: the account's buckets, shared through a ledger every node updates.

EC2 throttles per account, so the limit a fleet meets is the sum of every node's calls against the
account's buckets. A per-node budget cannot know that sum: two thousand nodes each keeping to a modest
rate still send a thousand times what the account refills, and back-off that halves each node's rate
still leaves them far above their share (the simulator shows it: ``vpccni bench fleet``). This module
paces the fleet as one client instead. A *ledger* holds, for each of the account's buckets, its token
count at a point in time; a node about to call EC2 *reserves* one token in the call's bucket: it reads
the ledger, refills it to now at ``share`` of the bucket's documented rate, takes one token (the count may
go negative: the calls queued before it), writes the ledger back — compare-and-swap on the object's
version, re-read on conflict — and sleeps the time the queue ahead of it needs. Calls reach EC2 at the
rate the account allows, in the order they were reserved, and none is throttled unless something outside
the fleet spends the same account's tokens (``share`` below 1 leaves room for it).

The ledger lives wherever every node can compare-and-swap: ipamd keeps it in a ConfigMap
(:mod:`ipamd.k8s.ledger`), the simulator in an emulated API. The reservation arithmetic is pure
(:func:`reserve`, :func:`backlog`); :class:`FleetBudget` puts it in front of the node's own
:class:`~vpccni.cloud.budget.ApiBudget` with the interface :class:`~vpccni.cloud.retry.CallRunner` uses.
Bucket names and sizes come from the caller (EC2's table is :mod:`vpccni.cloud.aws.buckets`): this
module knows no cloud.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from vpccni.cloud.budget import ActionClass, ApiBudget, BucketState, Clock, Sleep
from vpccni.errors import CloudThrottled

LEDGER_VERSION = 1
CONFLICT_BACKOFF_S = 0.02  # first re-read delay after a lost compare-and-swap, doubling, jittered
MAX_CONFLICTS = 12


@dataclass(frozen=True)
class Rate:
    capacity: float  # tokens when full
    refill_per_s: float


Ledger = Mapping[str, tuple[float, float]]  # bucket -> (tokens, wall-clock seconds they were counted at)


def _refilled(ledger: Ledger, bucket: str, rate: Rate, now: float) -> float:
    tokens, at = ledger.get(bucket, (rate.capacity, now))
    return min(rate.capacity, tokens + max(0.0, now - at) * rate.refill_per_s)


def reserve(ledger: Ledger, bucket: str, rate: Rate, now: float) -> tuple[Ledger, float]:
    """The ledger after one token of ``bucket`` is taken at ``now``, and how long its taker must wait."""
    tokens = _refilled(ledger, bucket, rate, now) - 1.0
    wait = 0.0 if tokens >= 0 else -tokens / rate.refill_per_s if rate.refill_per_s > 0 else float("inf")
    updated = dict(ledger)
    updated[bucket] = (tokens, now)
    return updated, wait


def backlog(ledger: Ledger, bucket: str, rate: Rate, now: float) -> float:
    """How long a token of ``bucket`` reserved at ``now`` would wait (0: one is there)."""
    tokens = _refilled(ledger, bucket, rate, now)
    if tokens >= 1:
        return 0.0
    return (1.0 - tokens) / rate.refill_per_s if rate.refill_per_s > 0 else float("inf")


def encode(ledger: Ledger) -> str:
    return json.dumps({"version": LEDGER_VERSION, "buckets": {k: [round(t, 6), round(a, 6)]
                                                               for k, (t, a) in sorted(ledger.items())}},
                      separators=(",", ":"))


def decode(text: str | None) -> dict[str, tuple[float, float]]:
    """A ledger from its text; an empty, unreadable or foreign one is a full ledger (every bucket full)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
        if data.get("version") != LEDGER_VERSION:
            return {}
        return {str(k): (float(v[0]), float(v[1])) for k, v in data["buckets"].items()}
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return {}


class LedgerStore(Protocol):
    """Where the fleet's ledger lives: read with a version, write only over that version."""

    def read(self) -> tuple[str | None, str | None]:
        """(ledger text or None if there is none yet, version or None)."""
        ...

    def write(self, text: str, version: str | None) -> bool:
        """Replace the ledger if still at ``version`` (None: create it); False if someone wrote first."""
        ...


class FleetBudget(ApiBudget):
    """The node's budget, then a reservation in the fleet's ledger, before every cloud request. An
    ApiBudget wherever one is taken (CallRunner, the metrics): its own buckets are the node's, ``local``.

    ``rates`` are the account's buckets already scaled by the share the fleet may use; ``bucket_of`` maps
    an action to its bucket. A reservation that would wait longer than ``max_wait_s`` is not made and
    raises CloudThrottled (code ``FleetBudgetExhausted``, retryable like a throttle). Thread-safe as far
    as the store is (each call reads and writes it afresh)."""

    def __init__(self, local: ApiBudget, store: LedgerStore, rates: Mapping[str, Rate],
                 bucket_of: Callable[[str], str], *, clock: Clock = time.time, sleep: Sleep = time.sleep,
                 max_wait_s: float = 3600.0, rng: random.Random | None = None) -> None:
        # No super().__init__: the node's buckets are ``local``'s; this class adds the ledger in front.
        self.local = local
        self.settings = local.settings
        self._store = store
        self._rates = dict(rates)
        self._bucket_of = bucket_of
        self._clock = clock
        self._sleep = sleep
        self._max_wait_s = max_wait_s
        self._rng = rng or random.Random()
        self.reservations = 0
        self.conflicts = 0
        self.waited_s = 0.0

    def acquire(self, action: str) -> float:
        """Wait for the node's own token, then for the fleet's; returns the seconds waited."""
        waited = self.local.acquire(action)
        bucket = self._bucket_of(action)
        rate = self._rates.get(bucket)
        if rate is None:
            return waited
        wait = self._reserve(action, bucket, rate)
        if wait > 0:
            self._sleep(wait)
        self.waited_s += wait
        return waited + wait

    def backlog(self, action: str) -> float:
        """Seconds a call of ``action`` would wait for the fleet's token now (reads the ledger only)."""
        bucket = self._bucket_of(action)
        rate = self._rates.get(bucket)
        if rate is None:
            return 0.0
        text, _ = self._store.read()
        return backlog(decode(text), bucket, rate, self._clock())

    def _reserve(self, action: str, bucket: str, rate: Rate) -> float:
        delay = CONFLICT_BACKOFF_S
        for _ in range(MAX_CONFLICTS):
            text, version = self._store.read()
            now = self._clock()
            updated, wait = reserve(decode(text), bucket, rate, now)
            if wait > self._max_wait_s:
                raise CloudThrottled(action, "FleetBudgetExhausted", f"the fleet's {bucket} queue is "
                                     f"{wait:.0f}s long (over {self._max_wait_s:g}s)")
            if self._store.write(encode(updated), version):
                self.reservations += 1
                return wait
            self.conflicts += 1
            self._sleep(self._rng.uniform(0, delay))
            delay *= 2
        raise CloudThrottled(action, "FleetBudgetContended",
                             f"the fleet's ledger changed under {MAX_CONFLICTS} reservations in a row")

    def on_throttle(self, action: str) -> None:
        self.local.on_throttle(action)

    def state(self) -> dict[ActionClass, BucketState]:
        return self.local.state()
