"""Observation of cloud calls: every API attempt is counted and timed through one small interface.

The provider reports each attempt it sends (including its own retries, each one a separate request)
to a :class:`CallObserver`. ipamd's metrics adapter turns that into aws-node's metric names
(``awscni_aws_api_latency_ms{api,error,status}``, ``awscni_aws_api_error_count{api,error}``,
``awscni_ec2api_req_count{fn}``, ``awscni_ec2api_error_count{fn}``) and ours (throttled calls); tests
and benchmarks use :class:`InMemoryObserver`. Observers are called from worker threads and must be
cheap and must not raise.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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
