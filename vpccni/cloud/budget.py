"""The explicit API budget: one token bucket per action class, with AIMD on throttling.

EC2 rate-limits per account and region with token buckets per action class (mutating vs describe).
Every node of a cluster draws on the same account buckets, so a node that simply retries a throttled
call makes the storm worse for all. Each node therefore keeps its own, smaller, bucket per class and
adapts its refill rate like TCP adapts its window:

* multiplicative decrease: a ``RequestLimitExceeded`` halves the refill rate (``decrease_factor``,
  at most once per ``decrease_cooldown_s`` so one burst of throttles counts once, never below
  ``min_rate``) and drains the bucket, so the next call waits;
* additive increase: each ``quiet_interval_s`` without a throttle adds ``increase_step`` back, up to
  the configured ``rate``.

Every node that sees throttles slows down at the same time, and they recover together.

Acquiring is a reservation: the caller takes a token now (the balance may go negative) and sleeps
once for exactly the time the refill needs, never in a busy loop. A reservation that would wait
longer than ``max_wait_s`` is refused with :class:`~vpccni.errors.CloudThrottled` (code
``BudgetExhausted``), which is retryable like a real throttle. Clock and sleep are injectable, so the
logic is tested with a fake clock; the lock makes it safe from the worker threads ipamd runs boto3 in.
"""

from __future__ import annotations

import enum
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vpccni.errors import CloudThrottled

Clock = Callable[[], float]
Sleep = Callable[[float], None]

BUDGET_EXHAUSTED = "BudgetExhausted"
"""Error code of the CloudThrottled raised when our own budget, not the cloud, refuses a call."""


class ActionClass(enum.StrEnum):
    MUTATING = "mutating"
    DESCRIBE = "describe"


_READ_PREFIXES = ("Describe", "Get", "List")


def action_class(action: str) -> ActionClass:
    """EC2's split: Describe*/Get*/List* draw on the describe bucket, everything else mutates."""
    return ActionClass.DESCRIBE if action.startswith(_READ_PREFIXES) else ActionClass.MUTATING


@dataclass(frozen=True)
class BucketSettings:
    """One token bucket. Every rate is in tokens (= API requests) per second."""

    capacity: float
    """Burst size in tokens; the bucket starts full."""
    rate: float
    """Refill rate when nothing throttles, tokens/s; the ceiling of additive increase."""
    min_rate: float
    """Floor of multiplicative decrease, tokens/s."""
    decrease_factor: float = 0.5
    """Rate multiplier applied on a throttle (0 < f < 1). Default 0.5: halve."""
    increase_step: float = 0.1
    """Tokens/s added back per quiet interval. Default 0.1."""
    quiet_interval_s: float = 10.0
    """Seconds without a throttle before each additive increase. Default 10 s."""
    decrease_cooldown_s: float = 1.0
    """Throttles closer together than this count as one decrease. Default 1 s."""

    def __post_init__(self) -> None:
        checks = {
            "capacity": self.capacity >= 1,
            "rate": self.rate > 0,
            "min_rate": 0 < self.min_rate <= self.rate,
            "decrease_factor": 0 < self.decrease_factor < 1,
            "increase_step": self.increase_step > 0,
            "quiet_interval_s": self.quiet_interval_s > 0,
            "decrease_cooldown_s": self.decrease_cooldown_s >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid BucketSettings {', '.join(bad)}: {self!r}")


@dataclass(frozen=True)
class BudgetSettings:
    """The per-node API budget. Defaults are a small share of EC2's per-account buckets (mutating:
    50 burst, 5/s; describe: 100 burst, 20/s), so that a fleet of nodes fits side by side. Sizes and
    rates match the VPCCNI_API_* defaults of :mod:`vpccni.config.settings`; after a throttle a bucket regains
    its full rate in about (rate - rate/2) / increase_step quiet intervals (50 s for both)."""

    mutating: BucketSettings = field(
        default_factory=lambda: BucketSettings(capacity=5, rate=0.5, min_rate=0.05, increase_step=0.05)
    )
    """Create/Attach/Detach/Delete/Assign/Unassign/Modify/CreateTags."""
    describe: BucketSettings = field(
        default_factory=lambda: BucketSettings(capacity=10, rate=2.0, min_rate=0.2, increase_step=0.2)
    )
    """Describe*."""
    max_wait_s: float = 30.0
    """Longest a caller sleeps for a token before BudgetExhausted, seconds. Default 30 s."""

    @classmethod
    def from_sizes(
        cls,
        *,
        mutating_capacity: float,
        mutating_rate: float,
        describe_capacity: float,
        describe_rate: float,
        max_wait_s: float = 30.0,
    ) -> BudgetSettings:
        """From the four VPCCNI_API_* numbers: the AIMD floor and step are each a tenth of the rate, so
        a throttled bucket can fall to 10 % and regains half its rate in five quiet intervals."""
        return cls(
            mutating=BucketSettings(
                capacity=mutating_capacity,
                rate=mutating_rate,
                min_rate=mutating_rate / 10,
                increase_step=mutating_rate / 10,
            ),
            describe=BucketSettings(
                capacity=describe_capacity,
                rate=describe_rate,
                min_rate=describe_rate / 10,
                increase_step=describe_rate / 10,
            ),
            max_wait_s=max_wait_s,
        )

    @classmethod
    def unlimited(cls) -> BudgetSettings:
        """A budget that never waits in practice (tests that are about something else)."""
        huge = BucketSettings(capacity=1e9, rate=1e9, min_rate=1e6, increase_step=1e6)
        return cls(mutating=huge, describe=huge, max_wait_s=0.0)


@dataclass(frozen=True)
class BucketState:
    """A bucket as metrics see it."""

    tokens: float  # may be negative: tokens already promised to waiting callers
    rate: float  # current refill rate, tokens/s
    max_rate: float
    capacity: float
    throttles: int  # throttles reported so far
    refusals: int  # reservations refused for exceeding max_wait_s


class TokenBucket:
    """A token bucket with reservation-style acquire and AIMD refill rate."""

    def __init__(self, settings: BucketSettings, *, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        now = clock()
        self._tokens = float(settings.capacity)
        self._rate = settings.rate
        self._last_refill = now
        self._quiet_since = now  # start of the current run of quiet intervals
        self._last_decrease = -math.inf
        self._throttles = 0
        self._refusals = 0

    def reserve(self, max_wait_s: float) -> float | None:
        """Take one token; return how long to wait for it (0 if it is there now), or None — and take
        nothing — if that would exceed ``max_wait_s``."""
        with self._lock:
            self._advance(self._clock())
            wait = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate
            if wait > max_wait_s:
                self._refusals += 1
                return None
            self._tokens -= 1
            return wait

    def on_throttle(self) -> None:
        """The cloud throttled a call of this class: decrease the rate and drain the bucket."""
        with self._lock:
            now = self._clock()
            self._advance(now)
            s = self._settings
            if now - self._last_decrease >= s.decrease_cooldown_s:
                self._rate = max(s.min_rate, self._rate * s.decrease_factor)
                self._last_decrease = now
            self._tokens = min(self._tokens, 0.0)
            self._quiet_since = now
            self._throttles += 1

    def state(self) -> BucketState:
        with self._lock:
            self._advance(self._clock())
            s = self._settings
            return BucketState(self._tokens, self._rate, s.rate, s.capacity, self._throttles, self._refusals)

    def _advance(self, now: float) -> None:
        s = self._settings
        elapsed = max(0.0, now - self._last_refill)
        self._tokens = min(float(s.capacity), self._tokens + elapsed * self._rate)
        self._last_refill = now
        if self._rate >= s.rate:
            self._quiet_since = now
            return
        steps = math.floor((now - self._quiet_since) / s.quiet_interval_s)
        if steps > 0:
            self._rate = min(s.rate, self._rate + steps * s.increase_step)
            self._quiet_since += steps * s.quiet_interval_s


class ApiBudget:
    """One :class:`TokenBucket` per :class:`ActionClass`; the provider calls :meth:`acquire` before each
    request and :meth:`on_throttle` when the cloud throttles one."""

    def __init__(
        self,
        settings: BudgetSettings | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.settings = settings or BudgetSettings()
        self._sleep = sleep
        self._buckets = {
            ActionClass.MUTATING: TokenBucket(self.settings.mutating, clock=clock),
            ActionClass.DESCRIBE: TokenBucket(self.settings.describe, clock=clock),
        }

    def acquire(self, action: str) -> float:
        """Wait for a token for ``action``; returns the seconds waited.

        Raises CloudThrottled(code=BudgetExhausted) when the wait would exceed ``max_wait_s``.
        """
        cls = action_class(action)
        wait = self._buckets[cls].reserve(self.settings.max_wait_s)
        if wait is None:
            raise CloudThrottled(
                action, BUDGET_EXHAUSTED, f"local {cls} budget needs more than {self.settings.max_wait_s}s"
            )
        if wait > 0:
            self._sleep(wait)
        return wait

    def on_throttle(self, action: str) -> None:
        self._buckets[action_class(action)].on_throttle()

    def state(self) -> dict[ActionClass, BucketState]:
        """Current tokens and rates per class (for ``vpccni_*`` budget metrics)."""
        return {cls: bucket.state() for cls, bucket in self._buckets.items()}
