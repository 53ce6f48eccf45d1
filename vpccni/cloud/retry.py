"""How one logical cloud call is executed: budget, timing, error mapping, retries.

:class:`CallRunner` wraps every request a cloud provider sends:

1. take a token from the :class:`~vpccni.cloud.budget.ApiBudget` (may sleep);
2. send the request, timing it;
3. map any SDK error to :mod:`vpccni.errors` (chained) with the provider's one :data:`ErrorMapper`
   (AWS: :func:`vpccni.cloud.aws.errors.map_error`), report the attempt to the observer, and
   on a throttle tell the budget so the whole node slows down;
4. retry *retryable* errors only (throttled, 5xx, timeout) with tenacity's full-jitter exponential
   back-off, bounded by attempts and by total time; permanent errors surface at once;
5. keep the logical call, from its first wait to its last answer, in :class:`InFlightCalls`, so a
   call that hangs is known while it hangs (an observer hears of each attempt only when it ends).

Ambiguous outcomes: after a timeout or 5xx the cloud may have acted anyway. When such an attempt is
followed by a *permanent* error (e.g. attaching an interface that the lost attempt already attached),
the runner asks the caller's ``resync`` callback to look at the cloud; if the effect is there, that is
the result, otherwise the permanent error stands. The SDK's own retries are turned down at the client
(see :mod:`vpccni.cloud.aws.client`), so this module is the retry policy.

Other clouds: each provider passes its one error mapper (AWS: :func:`vpccni.cloud.aws.errors.map_error`;
Azure: :func:`vpccni.cloud.azure.errors.map_error`). A throttle that names a wait
(``CloudThrottled.retry_after_s``, ARM's ``Retry-After``) is waited out in full before the next attempt,
never less. ``run(give_up_on=...)`` surfaces chosen retryable errors at once, for a caller whose own loop
handles them (a 412 on a NIC write needs a fresh read, not the same request again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from vpccni.cloud.budget import ApiBudget, Clock, Sleep
from vpccni.cloud.observe import CallObserver, InFlightCalls, NullObserver
from vpccni.errors import (
    CloudError,
    CloudServerError,
    CloudThrottled,
    CloudTimeout,
    PermanentError,
    RetryableError,
)

T = TypeVar("T")

ErrorMapper = Callable[[str, Exception], Exception]
"""``(action, sdk exception) -> vpccni error`` (anything it does not know comes back unchanged)."""


@dataclass(frozen=True)
class RetrySettings:
    """Our retry policy for one logical call (botocore's own retries are off)."""

    max_attempts: int = 5
    """Total attempts, the first included. Default 5."""
    max_total_s: float = 60.0
    """No new attempt starts this many seconds after the first one. Default 60 s."""
    backoff_base_s: float = 0.25
    """Width of the first back-off window (full jitter: uniform in [0, window]), seconds. Default 0.25."""
    backoff_max_s: float = 10.0
    """Cap of one back-off window, seconds. Default 10 s."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetrySettings.max_attempts must be >= 1, got {self.max_attempts}")
        if self.max_total_s <= 0 or self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"RetrySettings times must satisfy 0 <= base <= max, total > 0: {self!r}")


Resync = Callable[[CloudError], "T | None"]


class _WaitAtLeastRetryAfter:
    """Tenacity wait: the back-off window's draw, but never less than the ``Retry-After`` the cloud named."""

    def __init__(self, backoff: wait_random_exponential) -> None:
        self._backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        drawn = float(self._backoff(retry_state))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        asked = getattr(error, "retry_after_s", None)
        return max(drawn, float(asked)) if isinstance(asked, int | float) else drawn


class _StopAfter(stop_base):
    """Stop once ``seconds`` have passed since the first attempt, on an injectable clock (tenacity's
    own stop_after_delay reads the real clock)."""

    def __init__(self, seconds: float, clock: Clock) -> None:
        self._seconds = seconds
        self._clock = clock
        self._first = clock()

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() - self._first >= self._seconds


class CallRunner:
    """Runs cloud calls under one budget, one observer and one retry policy. Thread-safe."""

    def __init__(
        self,
        *,
        map_error: ErrorMapper,
        retry: RetrySettings | None = None,
        budget: ApiBudget | None = None,
        observer: CallObserver | None = None,
        in_flight: InFlightCalls | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        self._map_error = map_error
        self.retry = retry or RetrySettings()
        self.budget = budget or ApiBudget(clock=clock, sleep=sleep)
        self.observer = observer or NullObserver()
        self.in_flight = in_flight or InFlightCalls(clock=clock)
        self._clock = clock
        self._sleep = sleep

    def run(
        self,
        action: str,
        request: Callable[[], T],
        *,
        resync: Resync[T] | None = None,
        give_up_on: tuple[type[RetryableError], ...] = (),
    ) -> T:
        """Send ``request`` (one API action) with retries; returns its result or raises a vpccni error.

        ``give_up_on``: retryable error types raised at once instead of retried here."""
        ambiguous = False
        token = self.in_flight.begin(action)

        def attempt() -> T:
            nonlocal ambiguous
            self.budget.acquire(action)
            started = self._clock()
            self.in_flight.sent(token)
            try:
                result = request()
            except Exception as exc:
                elapsed = self._clock() - started
                mapped = self._map_error(action, exc)
                if not isinstance(mapped, CloudError):
                    self.in_flight.answered(token, type(exc).__name__)
                    self.observer.observe(action, elapsed, type(exc).__name__, False)
                    raise
                throttled = isinstance(mapped, CloudThrottled)
                self.in_flight.answered(token, mapped.code)
                self.observer.observe(action, elapsed, mapped.code, throttled)
                if throttled:
                    self.budget.on_throttle(action)
                if isinstance(mapped, PermanentError) and ambiguous and resync is not None:
                    resolved = resync(mapped)
                    if resolved is not None:
                        return resolved
                if isinstance(mapped, CloudTimeout | CloudServerError):
                    ambiguous = True
                raise mapped from exc
            self.observer.observe(action, self._clock() - started, None, False)
            return result

        retrying = Retrying(
            sleep=self._sleep,
            stop=stop_after_attempt(self.retry.max_attempts)
            | _StopAfter(self.retry.max_total_s, self._clock),
            wait=_WaitAtLeastRetryAfter(
                wait_random_exponential(multiplier=self.retry.backoff_base_s, max=self.retry.backoff_max_s)
            ),
            retry=retry_if_exception_type(RetryableError) & retry_if_not_exception_type(give_up_on),
            reraise=True,
        )
        try:
            return retrying(attempt)
        finally:
            self.in_flight.end(token)
