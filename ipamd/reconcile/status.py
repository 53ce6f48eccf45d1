"""Why the pool cannot grow: the reconciler's answer to "why no IP", kept with a time and a message.

The reconciler reports every outcome of a growth attempt here: blocked by a limit the pool math saw (ENI
limit, max pods), by the cloud (subnet full, no free /28, throttled, unauthorized, another error), or by
a setting or the node's state (provisioning disabled, node unschedulable, no ENIConfig). A successful grow
or a pool that meets its targets clears it. :class:`GrowthStatus` implements the server's
:class:`ipamd.state.hooks.PoolStatus`: an ADD that finds no free address answers with the current reason and
its message, so ``kubectl describe pod`` says "subnet full" instead of aws-node's bare "failed to assign an
IP address to container". ``last`` keeps the most recent block after it clears, for ``vpccni status``.

Throttles are noted as they happen (from the cloud observer, in worker threads: a deque append is
atomic), so an ADD that fails while the provider is still retrying a throttled call says "throttled"
rather than "growing" -- until an attempt sent after the last throttle is out: then that call is the news.

Two states are transient although they look like a limit, and say so (CNI code 11, not 100):

* a cloud call under way for longer than expected (:data:`vpccni.cloud.observe.SLOW_CALL_S`): the pool
  waits for it, and every pass and sync waits behind it, so it is the answer, named with its action, how
  long it has been under way and how its attempts went (from the provider's
  :class:`~vpccni.cloud.observe.InFlightCalls`);
* every address that could serve is cooling down: whatever keeps the pool from growing (the ENI limit, a
  full subnet ...), an address comes back when its cooldown ends, and the answer says when the first does.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from ipamd.state.datastore import Datastore
from ipamd.state.hooks import DatastorePoolStatus
from vpccni.cloud.observe import CallInFlight, InFlightCalls
from vpccni.wire.protocol import NoIpReason

THROTTLE_WINDOW_S = 60.0
# Reasons only an operator can lift. While addresses cool down, an ADD refused for one of them is early
# rather than refused for good; and a slow cloud call does not hide one of them.
NEEDS_OPERATOR = frozenset({
    NoIpReason.SUBNET_FULL, NoIpReason.NO_CIDR_BLOCK, NoIpReason.ENI_LIMIT, NoIpReason.MAX_PODS,
    NoIpReason.UNAUTHORIZED, NoIpReason.PROVISIONING_DISABLED, NoIpReason.UNSCHEDULABLE,
    NoIpReason.ENI_CONFIG_MISSING,
})


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Blocked:
    reason: NoIpReason
    cause: str  # what stops growth, e.g. "the subnet has no free address (EC2 ...)"
    since: float  # wall-clock seconds: first seen (unchanged while the same reason repeats)
    at: float  # wall-clock seconds: last confirmed
    cleared_at: float | None = None
    retry: str = ""  # when the next attempt comes, if the pool waits on purpose

    @property
    def message(self) -> str:
        return f"{self.cause} — {self.retry}" if self.retry else self.cause

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": str(self.reason), "message": self.message, "since": iso(self.since),
            "at": iso(self.at), "cleared_at": iso(self.cleared_at) if self.cleared_at else None,
        }


class GrowthStatus:
    """The current and the last reason the pool could not grow. Owned by the event loop.

    ``in_flight`` (the provider's calls under way) must count on the same clock as ``monotonic``: a
    throttle is past once an attempt sent after it is out.
    """

    def __init__(self, datastore: Datastore, *, in_flight: InFlightCalls | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._datastore = datastore
        self._in_flight = in_flight or InFlightCalls(clock=monotonic)
        self._clock = clock
        self._monotonic = monotonic
        self.current: Blocked | None = None
        self.last: Blocked | None = None
        self.started = False  # the first pool pass ran
        self.growing = False  # a grow is being applied right now
        self._throttles: deque[float] = deque(maxlen=1000)  # monotonic times of throttled calls

    # --- reports ---------------------------------------------------------------------------------

    def block(self, reason: NoIpReason, cause: str, retry: str = "") -> None:
        """Growth is blocked by ``cause``; ``retry``: when the pool tries again, if it waits on purpose."""
        now = self._clock()
        if self.current is not None and self.current.reason == reason:
            self.current = replace(self.current, cause=cause, retry=retry, at=now)
        else:
            self.current = Blocked(reason, cause, now, now, retry=retry)
        self.last = self.current

    def clear(self) -> None:
        if self.current is not None:
            self.last = replace(self.current, cleared_at=self._clock())
            self.current = None

    def note_throttle(self) -> None:
        """A cloud call was throttled (called from worker threads)."""
        self._throttles.append(self._monotonic())

    def throttles_recently(self, window_s: float = THROTTLE_WINDOW_S) -> int:
        horizon = self._monotonic() - window_s
        return sum(1 for t in list(self._throttles) if t >= horizon)

    # --- ipamd.state.hooks.PoolStatus ------------------------------------------------------------------

    def why_no_ip(self) -> tuple[NoIpReason, str]:
        if not self.started:
            return NoIpReason.STARTING, "ipamd is still starting: the first pool pass has not run yet"
        reason, message, idle = self._cause()
        back = self._datastore.first_back()
        if back is None:
            return reason, message
        cooling = (f"{self._datastore.stats().cooling} released address(es) come back after "
                   f"IP_COOLDOWN_PERIOD={self._datastore.cooldown_s:g}s, the first in "
                   f"{max(back - self._clock(), 0.0):.0f}s (at {iso(back)})")
        if idle or reason in NEEDS_OPERATOR:
            return NoIpReason.COOLING, f"{cooling}; until then: {message}"
        return reason, f"{message}; {cooling}"

    def _cause(self) -> tuple[NoIpReason, str, bool]:
        """Why the pool cannot give an address, cooldown aside; True when nothing is under way at all."""
        now = self._in_flight.now()
        slow = self._in_flight.slowest()
        current = self.current
        if slow is not None and (current is None or current.reason not in NEEDS_OPERATOR):
            return NoIpReason.CLOUD_SLOW, (
                f"EC2 {slow.describe(now)}, longer than expected ({self._in_flight.slow_after_s:g}s); every "
                "pool pass waits for its answer"), False
        if current is not None:
            age = max(self._clock() - current.since, 0.0)
            message = f"{current.message} (since {iso(current.since)}, {age:.0f}s)"
            if slow is not None:
                message += f"; meanwhile EC2 {slow.describe(now)}"
            return current.reason, message, False
        calls = self._in_flight.calls()
        mono = self._monotonic()
        throttles = [t for t in list(self._throttles) if t >= mono - THROTTLE_WINDOW_S]
        if throttles and not _answered_since(calls, max(throttles)):
            return NoIpReason.THROTTLED, (
                f"EC2 throttled {len(throttles)} call(s) in the last {THROTTLE_WINDOW_S:.0f}s, the last "
                f"{mono - max(throttles):.0f}s ago; the pool is retrying within its budget"), False
        if calls:
            return NoIpReason.GROWING, f"the pool is waiting for EC2: {calls[0].describe(now)}", False
        reason, message = DatastorePoolStatus(self._datastore).why_no_ip()  # nothing blocks: say what is used
        return reason, message, not self.growing

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current.to_json() if self.current else None,
            "last": self.last.to_json() if self.last else None,
            "throttled_last_minute": self.throttles_recently(),
            "cloud_calls_in_flight": [c.describe(self._in_flight.now()) for c in self._in_flight.calls()],
            "growing": self.growing,
        }


def _answered_since(calls: list[CallInFlight], throttled_at: float) -> bool:
    """Is an attempt sent after ``throttled_at`` out now? Then the throttle is past and that call is news."""
    return any(c.sent_at is not None and c.sent_at > throttled_at for c in calls)
