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
rather than "growing".
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
from vpccni.wire.protocol import NoIpReason

THROTTLE_WINDOW_S = 60.0


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
    """The current and the last reason the pool could not grow. Owned by the event loop."""

    def __init__(self, datastore: Datastore, *, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._datastore = datastore
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
        if self.current is not None:
            age = max(self._clock() - self.current.since, 0.0)
            since = iso(self.current.since)
            cooling = self._datastore.stats().cooling
            later = (f"; {cooling} released address(es) come back after IP_COOLDOWN_PERIOD="
                     f"{self._datastore.cooldown_s:g}s" if cooling else "")
            return self.current.reason, f"{self.current.message} (since {since}, {age:.0f}s){later}"
        throttles = self.throttles_recently()
        if throttles:
            return NoIpReason.THROTTLED, (f"EC2 throttled {throttles} call(s) in the last "
                                          f"{THROTTLE_WINDOW_S:.0f}s; the pool is retrying within its budget")
        return DatastorePoolStatus(self._datastore).why_no_ip()  # nothing blocks growth: say what is used

    def to_json(self) -> dict[str, Any]:
        return {
            "current": self.current.to_json() if self.current else None,
            "last": self.last.to_json() if self.last else None,
            "throttled_last_minute": self.throttles_recently(),
            "growing": self.growing,
        }
