"""Per-action call counters: what the EC2 endpoint answered, as a client saw it.

Every EC2 request that reaches the server counts one call for its action. An answer of
``RequestLimitExceeded`` (from the token buckets or injected) counts as throttled; any other error
answer (semantic, injected, moto's own, or a dropped connection) counts as an error. Tests and
benchmarks read these to say how many calls a scenario cost and how many were refused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

THROTTLE_CODE = "RequestLimitExceeded"


@dataclass(frozen=True)
class ActionCounters:
    calls: int = 0  # requests received for the action
    throttled: int = 0  # answered RequestLimitExceeded
    errors: int = 0  # answered any other error (or dropped)

    @property
    def succeeded(self) -> int:
        return self.calls - self.throttled - self.errors

    def to_json(self) -> dict[str, int]:
        return {"calls": self.calls, "throttled": self.throttled, "errors": self.errors}


class CallCounters:
    """Counters for every action seen. Thread-safe; readers get copies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_action: dict[str, ActionCounters] = {}

    def call(self, action: str) -> None:
        self._bump(action, calls=1)

    def outcome(self, action: str, error_code: str | None) -> None:
        """Record how a counted call ended: ``None`` = success."""
        if error_code == THROTTLE_CODE:
            self._bump(action, throttled=1)
        elif error_code is not None:
            self._bump(action, errors=1)

    def _bump(self, action: str, calls: int = 0, throttled: int = 0, errors: int = 0) -> None:
        with self._lock:
            old = self._by_action.get(action, ActionCounters())
            self._by_action[action] = replace(
                old, calls=old.calls + calls, throttled=old.throttled + throttled, errors=old.errors + errors
            )

    def snapshot(self) -> dict[str, ActionCounters]:
        with self._lock:
            return dict(self._by_action)

    def reset(self) -> None:
        with self._lock:
            self._by_action.clear()
