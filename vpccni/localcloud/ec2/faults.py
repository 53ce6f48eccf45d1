"""Fault injection for the local EC2: any error code, a 5xx, or a timeout, by count or by probability.

A rule names an action (or ``*`` for every EC2 action) and what the caller sees: an EC2 error ``code``
with its HTTP ``status``, or — with ``timeout_s`` — no answer at all: the server holds the request for
``timeout_s`` seconds and then drops the connection, so a client whose read timeout is shorter sees a
read timeout and one with a longer timeout sees the connection closed. A rule fires on the next
``count`` matching calls, or on each matching call with ``probability``, or both (with probability, at
most count times); with neither it fires on every matching call until cleared.

Probabilities draw from one ``random.Random(seed)``: the same seed and the same sequence of calls give
the same faults, so a failing test replays. Rules are consulted in the order they were added; the first
that fires wins.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, replace

from vpccni.cloud.aws.codes import status_for

ANY_ACTION = "*"

_DEFAULT_MESSAGES = {
    "RequestLimitExceeded": "Request limit exceeded.",
    "InternalError": "An internal error has occurred.",
    "ServiceUnavailable": "The service is unavailable. Please try again shortly.",
    "Unavailable": "The server is overloaded and can't handle the request.",
}


@dataclass(frozen=True)
class Fault:
    """What one request gets instead of its normal answer."""

    code: str
    status: int
    message: str
    timeout_s: float | None = None  # set: hold the request this long, then drop the connection


@dataclass(frozen=True)
class FaultRule:
    """One injected rule, as returned by :meth:`FaultInjector.inject` (a snapshot; ids are stable)."""

    rule_id: int
    action: str  # EC2 action name, or "*" for every action
    code: str
    status: int  # HTTP status of the error answer
    message: str
    count: int | None  # how many more times it may fire; None = unlimited
    probability: float | None  # chance to fire per matching call; None = always
    timeout_s: float | None  # seconds to hold before dropping the connection; None = answer an error
    fired: int = 0  # how many times it has fired so far

    @property
    def active(self) -> bool:
        return self.count is None or self.count > 0

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.rule_id,
            "action": self.action,
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "count": self.count,
            "probability": self.probability,
            "timeout_s": self.timeout_s,
            "fired": self.fired,
        }


class FaultInjector:
    """The fault rules of one server. Thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._next_id = 1

    def inject(
        self,
        action: str,
        code: str = "InternalError",
        *,
        status: int | None = None,
        count: int | None = None,
        probability: float | None = None,
        timeout_s: float | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Add a rule; bad arguments raise ValueError naming the argument."""
        if not action:
            raise ValueError("action: expected an EC2 action name or '*'")
        if not code:
            raise ValueError("code: expected an EC2 error code, e.g. 'RequestLimitExceeded'")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise ValueError(f"count: expected an integer >= 1, got {count!r}")
        if probability is not None and not 0.0 < probability <= 1.0:
            raise ValueError(f"probability: expected 0 < p <= 1, got {probability!r}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"timeout_s: expected seconds > 0, got {timeout_s!r}")
        resolved_status = status if status is not None else status_for(code)
        if not 400 <= resolved_status <= 599:
            raise ValueError(f"status: expected an HTTP error status 400..599, got {resolved_status!r}")
        with self._lock:
            rule = FaultRule(
                rule_id=self._next_id,
                action=action,
                code=code,
                status=resolved_status,
                message=message or _DEFAULT_MESSAGES.get(code, f"{code} (injected by the local cloud)"),
                count=count,
                probability=probability,
                timeout_s=timeout_s,
            )
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        """Remove every rule (the random sequence continues; see :meth:`reseed`)."""
        with self._lock:
            self._rules.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random sequence, as if the server had been created with ``seed``."""
        with self._lock:
            self._rng = random.Random(seed)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pick(self, action: str) -> Fault | None:
        """The fault for this call of ``action``, if a rule fires (and is consumed by it)."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.action not in (action, ANY_ACTION) or not rule.active:
                    continue
                if rule.probability is not None and self._rng.random() >= rule.probability:
                    continue
                self._rules[index] = replace(
                    rule, fired=rule.fired + 1, count=None if rule.count is None else rule.count - 1
                )
                return Fault(rule.code, rule.status, rule.message, rule.timeout_s)
            return None
