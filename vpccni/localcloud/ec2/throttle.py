"""EC2 request throttling: account-wide token buckets per action class, as AWS documents them.

AWS throttles EC2 API requests per account and region with token buckets: each request takes one token
from its action class's bucket; the bucket refills at a fixed rate up to its capacity; an empty bucket
answers ``RequestLimitExceeded`` (HTTP 503). Published defaults (EC2 API reference, "Request
throttling"): mutating actions 50 tokens refilling 5/s, non-mutating (Describe*) 100 refilling 20/s,
and unfiltered, unpaginated non-mutating calls a stricter 50 refilling 10/s. A fleet of ipamd's sharing
one account therefore shares these buckets, which is exactly the storm we want tests to meet.

The clock is injectable (seconds, monotonic) so the refill arithmetic is testable without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from vpccni.cloud.aws import buckets

Clock = Callable[[], float]

MUTATING = "mutating"
NON_MUTATING = "non_mutating"
UNFILTERED_NON_MUTATING = "unfiltered_non_mutating"

_NON_MUTATING_VERBS = ("Describe", "Get", "List", "Search")


def is_mutating(action: str) -> bool:
    """Whether ``action`` changes state (everything but Describe*/Get*/List*/Search*)."""
    return not action.startswith(_NON_MUTATING_VERBS)


@dataclass(frozen=True)
class BucketSpec:
    """One token bucket."""

    capacity: float  # tokens (requests) the bucket holds when full; a burst of this size is allowed
    refill_per_s: float  # tokens added per second, up to capacity


@dataclass(frozen=True)
class ThrottleConfig:
    """Throttling settings. Default: AWS's published per-account buckets.

    ``enabled``: False lets every request through (counters still count).
    ``buckets``: action class -> bucket. Classes used by :meth:`class_of`: ``mutating`` (default 50,
    5/s), ``non_mutating`` (default 100, 20/s) and ``unfiltered_non_mutating`` (default 50, 10/s: a
    Describe* call with no filter, no id list and no MaxResults).
    ``action_classes``: action -> class, overriding the rule above (e.g. give ``RunInstances`` its own
    bucket by naming a class that is also in ``buckets``).
    """

    enabled: bool = True
    buckets: Mapping[str, BucketSpec] = field(
        default_factory=lambda: {
            MUTATING: BucketSpec(50, 5),
            NON_MUTATING: BucketSpec(100, 20),
            UNFILTERED_NON_MUTATING: BucketSpec(50, 10),
        }
    )
    action_classes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = {MUTATING, NON_MUTATING} - set(self.buckets)
        if missing:
            raise ValueError(f"buckets: missing the class(es) {', '.join(sorted(missing))}")
        for name, spec in self.buckets.items():
            if spec.capacity < 1 or spec.refill_per_s < 0:
                raise ValueError(f"bucket {name!r}: capacity must be >= 1 and refill_per_s >= 0, got {spec}")
        for action, cls in self.action_classes.items():
            if cls not in self.buckets:
                raise ValueError(f"action {action!r} is mapped to class {cls!r}, which has no bucket")

    @classmethod
    def disabled(cls) -> ThrottleConfig:
        return cls(enabled=False)

    @classmethod
    def aws_documented(cls) -> ThrottleConfig:
        """The account's buckets as the EC2 API reference lists them for the calls a CNI makes
        (:mod:`vpccni.cloud.aws.buckets`): the address and interface actions each have a bucket of their
        own (100 tokens, 5/s); every other mutating action shares the mutating bucket (50, 5/s);
        Describe* share the non-mutating one (100, 20/s), or the unfiltered one (50, 10/s)."""
        return cls(
            buckets={name: BucketSpec(b.capacity, b.refill_per_s) for name, b in buckets.DOCUMENTED.items()},
            action_classes={action: action for action in buckets.OWN_BUCKET_ACTIONS},
        )

    def scaled(self, refill_factor: float, capacity_factor: float = 1.0) -> ThrottleConfig:
        """Every bucket's refill multiplied by ``refill_factor`` (a compressed clock) and its capacity by
        ``capacity_factor`` (fewer clients sharing the account), never below one token."""
        return ThrottleConfig(
            enabled=self.enabled,
            buckets={
                name: BucketSpec(max(1.0, spec.capacity * capacity_factor), spec.refill_per_s * refill_factor)
                for name, spec in self.buckets.items()
            },
            action_classes=dict(self.action_classes),
        )

    def class_of(self, action: str, *, filtered: bool = True) -> str:
        """The bucket an ``action`` draws from. ``filtered``: the request narrowed its result set."""
        if action in self.action_classes:
            return self.action_classes[action]
        if is_mutating(action):
            return MUTATING
        if not filtered and UNFILTERED_NON_MUTATING in self.buckets:
            return UNFILTERED_NON_MUTATING
        return NON_MUTATING

    def to_json(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "buckets": {
                k: {"capacity": v.capacity, "refill_per_s": v.refill_per_s} for k, v in self.buckets.items()
            },
            "action_classes": dict(self.action_classes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ThrottleConfig:
        """Parse the control plane's JSON; a bad field raises ValueError naming it."""
        unknown = set(data) - {"enabled", "buckets", "action_classes"}
        if unknown:
            raise ValueError(f"unknown throttle field(s): {', '.join(sorted(unknown))}")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled: expected true or false, got {enabled!r}")
        raw_buckets = data.get("buckets")
        buckets = dict(cls().buckets)
        if raw_buckets is not None:
            if not isinstance(raw_buckets, dict):
                raise ValueError("buckets: expected an object of {class: {capacity, refill_per_s}}")
            for name, spec in raw_buckets.items():
                if not isinstance(spec, dict) or set(spec) != {"capacity", "refill_per_s"}:
                    raise ValueError(f"buckets.{name}: expected {{capacity, refill_per_s}}, got {spec!r}")
                try:
                    buckets[name] = BucketSpec(float(spec["capacity"]), float(spec["refill_per_s"]))
                except (TypeError, ValueError):
                    raise ValueError(f"buckets.{name}: capacity and refill_per_s must be numbers") from None
        classes = data.get("action_classes", {})
        if not isinstance(classes, dict) or not all(isinstance(v, str) for v in classes.values()):
            raise ValueError("action_classes: expected an object of {action: class}")
        return cls(enabled=enabled, buckets=buckets, action_classes=dict(classes))


class _Bucket:
    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = spec.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.spec.capacity, self.tokens + elapsed * self.spec.refill_per_s)
        self.updated = now


class Throttler:
    """Token buckets for one account. Thread-safe; ``configure`` refills every bucket."""

    def __init__(self, config: ThrottleConfig | None = None, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._config = config or ThrottleConfig()
        self._buckets = self._fresh_buckets()

    def _fresh_buckets(self) -> dict[str, _Bucket]:
        now = self._clock()
        return {name: _Bucket(spec, now) for name, spec in self._config.buckets.items()}

    @property
    def config(self) -> ThrottleConfig:
        return self._config

    def configure(self, config: ThrottleConfig) -> None:
        with self._lock:
            self._config = config
            self._buckets = self._fresh_buckets()

    def try_acquire(self, action: str, *, filtered: bool = True) -> bool:
        """Take one token for ``action``; False means the request is throttled."""
        with self._lock:
            if not self._config.enabled:
                return True
            bucket = self._buckets[self._config.class_of(action, filtered=filtered)]
            bucket.refill(self._clock())
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True
            return False

    def would_throttle(self, action: str, *, filtered: bool = True) -> bool:
        """Whether ``action`` would be throttled now, taking nothing (a peek)."""
        with self._lock:
            if not self._config.enabled:
                return False
            bucket = self._buckets[self._config.class_of(action, filtered=filtered)]
            bucket.refill(self._clock())
            return bucket.tokens < 1

    def tokens(self) -> dict[str, float]:
        """Current tokens per class (after refill)."""
        with self._lock:
            now = self._clock()
            for bucket in self._buckets.values():
                bucket.refill(now)
            return {name: bucket.tokens for name, bucket in self._buckets.items()}
