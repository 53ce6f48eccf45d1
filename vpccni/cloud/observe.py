"""Observation of cloud calls: every API attempt is counted and timed through one small interface.

The provider reports each attempt it sends (including its own retries, each one a separate request)
to a :class:`CallObserver`. ipamd's metrics adapter turns that into aws-node's metric names
(``awscni_aws_api_latency_ms{api,error,status}``, ``awscni_aws_api_error_count{api,error}``,
``awscni_ec2api_req_count{fn}``, ``awscni_ec2api_error_count{fn}``) and ours (throttled calls); tests
and benchmarks use :class:`InMemoryObserver`. Observers are called from worker threads and must be
cheap and must not raise.

An observer hears of a call only when it ends. :class:`InFlightCalls` knows the calls under way: the
runner enters each logical call (all its attempts and the waits between them) when it begins and leaves it
when it ends, so a call that hangs can be named, with how long it has been under way, while it still
hangs, which is what ipamd answers to "why no IP" and what it logs.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

SLOW_CALL_S = 5.0
"""A cloud call under way longer than this is slower than expected: EC2 answers in well under a second,
and a pool that has waited this long for an answer is worth an operator's attention."""


class CallObserver(Protocol):
    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        """One request to the cloud: its API action, how long it took, the cloud's error code (None on
        success) and whether the cloud throttled it."""
        ...


class NullObserver:
    """Observes nothing (the default when no metrics are wanted)."""

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        return None


@dataclass(frozen=True)
class CallRecord:
    action: str
    seconds: float
    error_code: str | None
    throttled: bool


class InMemoryObserver:
    """Keeps every record; thread-safe. For tests, benchmarks and ``vpccni bench``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        with self._lock:
            self._records.append(CallRecord(action, seconds, error_code, throttled))

    @property
    def records(self) -> Sequence[CallRecord]:
        with self._lock:
            return tuple(self._records)

    def calls(self) -> Counter[str]:
        """Requests per action."""
        return Counter(r.action for r in self.records)

    def errors(self) -> Counter[tuple[str, str]]:
        """Failed requests per (action, error code)."""
        return Counter((r.action, r.error_code) for r in self.records if r.error_code is not None)

    def throttled(self) -> int:
        return sum(1 for r in self.records if r.throttled)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class FanOutObserver:
    """Reports each call to several observers (e.g. metrics and an in-memory recorder)."""

    def __init__(self, *observers: CallObserver) -> None:
        self._observers = observers

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        for observer in self._observers:
            observer.observe(action, seconds, error_code, throttled)


@dataclass(frozen=True)
class CallInFlight:
    """One logical cloud call under way: its action, when it began (monotonic), how many attempts were
    sent, whether one is out right now (else it waits: for the API budget or before a retry) and the error
    code the previous attempt ended in."""

    action: str
    began: float
    attempts: int = 0
    sent_at: float | None = None  # monotonic: when the attempt out now was sent; None while waiting
    last_error: str | None = None

    def describe(self, now: float) -> str:
        """E.g. "AssignPrivateIpAddresses, under way for 14s (attempt 2 sent 3s ago; attempt 1 ended in
        RequestTimeout)"."""
        if self.sent_at is not None:
            state = f"attempt {self.attempts} sent {max(now - self.sent_at, 0.0):.0f}s ago"
        elif self.attempts:
            state = f"waiting to send attempt {self.attempts + 1}"
        else:
            state = "waiting for the API budget"
        earlier = (f"; attempt {self.attempts - (self.sent_at is not None)} ended in {self.last_error}"
                   if self.last_error else "")
        return f"{self.action}, under way for {max(now - self.began, 0.0):.0f}s ({state}{earlier})"


class InFlightCalls:
    """The cloud calls under way right now. Thread-safe: the runner updates it from worker threads, ipamd
    reads it from its event loop."""

    def __init__(self, *, slow_after_s: float = SLOW_CALL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slow_after_s = slow_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._calls: dict[int, CallInFlight] = {}
        self._reported: dict[int, float] = {}  # call -> the age it was last logged as slow at

    def now(self) -> float:
        return self._clock()

    def begin(self, action: str) -> int:
        with self._lock:
            token = next(self._ids)
            self._calls[token] = CallInFlight(action, self._clock())
            return token

    def sent(self, token: int) -> None:
        with self._lock:
            call = self._calls[token]
            self._calls[token] = replace(call, attempts=call.attempts + 1, sent_at=self._clock())

    def answered(self, token: int, error_code: str | None) -> None:
        """The attempt out now ended (``error_code``: how, None if it succeeded)."""
        with self._lock:
            self._calls[token] = replace(self._calls[token], sent_at=None, last_error=error_code)

    def end(self, token: int) -> CallInFlight:
        with self._lock:
            self._reported.pop(token, None)
            return self._calls.pop(token)

    def calls(self) -> list[CallInFlight]:
        """Every call under way, the oldest first."""
        with self._lock:
            return sorted(self._calls.values(), key=lambda c: c.began)

    def slowest(self) -> CallInFlight | None:
        """The oldest call under way for longer than :attr:`slow_after_s`, if any."""
        calls = self.calls()
        if calls and self._clock() - calls[0].began >= self.slow_after_s:
            return calls[0]
        return None

    def newly_slow(self) -> list[CallInFlight]:
        """Calls past :attr:`slow_after_s` not yet reported at their age: each is due when it crosses the
        threshold and again each time its age doubles, so a hang is heard of at once and then seldom."""
        now = self._clock()
        due = []
        with self._lock:
            for token, call in self._calls.items():
                age = now - call.began
                last = self._reported.get(token)
                if age >= self.slow_after_s and (last is None or age >= 2 * last):
                    self._reported[token] = age
                    due.append(call)
        return sorted(due, key=lambda c: c.began)
