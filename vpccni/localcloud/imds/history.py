"""What a node's IMDS shows at a given moment: EC2 state as it was, plus what EC2 already removed.

Real IMDS is eventually consistent with EC2 in two ways ipamd must survive (aws-node documents both and works
around them):

- **lag**: a change (an attached ENI, an assigned IP) shows up N seconds after EC2 made it;
- **stale**: an ENI or IP that EC2 removed keeps showing for N seconds.

Both come from one history of timestamped snapshots of the instance, recorded after every mutating EC2
call (plus the initial one). A snapshot is in force from its timestamp until the next one. The view at
time ``now`` is:

1. the snapshot in force at ``t = now - lag`` (the oldest one kept if ``t`` is older than the history);
2. merged with every snapshot in force at some moment of ``[t - stale, t]``: an ENI that is missing from
   the base comes back as its newest version in that window; an ENI present in the base keeps its current
   addresses and prefixes, followed by any it lost within the window.

The clock is injected (seconds, monotonic) so the logic is tested without sleeping. Snapshots equal to the
previous one are not kept, and snapshots that can no longer be in force for any configured lag + stale
(with a floor, so that raising lag a little later still finds history) are pruned on every record.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from vpccni.localcloud.model import EniView, InstanceView

Clock = Callable[[], float]

DEFAULT_RETAIN_S = 60.0
"""Seconds of history kept even when lag + stale is smaller (so raising either later has data to show)."""


@dataclass(frozen=True)
class Snapshot:
    """The instance as EC2 held it from ``at`` (clock seconds) until the next snapshot."""

    at: float
    view: InstanceView


def _ordered_union(first: Iterable[str], *rest: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = dict.fromkeys(first)
    for items in rest:
        for item in items:
            seen.setdefault(item, None)
    return tuple(seen)


def _device_order(eni: EniView) -> tuple[int, str]:
    return (eni.device_index if eni.device_index is not None else 0, eni.eni_id)


def merge_stale(base: InstanceView, older: list[InstanceView]) -> InstanceView:
    """``base`` plus every ENI, address and prefix that ``older`` views (newest first) still had."""
    enis: dict[str, EniView] = {e.eni_id: e for e in base.enis}
    for view in older:
        for old in view.enis:
            current = enis.get(old.eni_id)
            if current is None:
                enis[old.eni_id] = old
                continue
            if set(old.private_ips) <= set(current.private_ips) and set(old.ipv4_prefixes) <= set(
                current.ipv4_prefixes
            ):
                continue
            enis[old.eni_id] = replace(
                current,
                private_ips=_ordered_union(current.private_ips, old.private_ips),
                ipv4_prefixes=_ordered_union(current.ipv4_prefixes, old.ipv4_prefixes),
            )
    return replace(base, enis=tuple(sorted(enis.values(), key=_device_order)))


class ViewHistory:
    """Timestamped snapshots of one instance; thread-safe (EC2 listener writes, IMDS handlers read)."""

    def __init__(self, initial: InstanceView, *, clock: Clock, retain_s: float = DEFAULT_RETAIN_S) -> None:
        if retain_s < 0:
            raise ValueError(f"retain_s must be >= 0 seconds, got {retain_s}")
        self._clock = clock
        self._retain_s = retain_s
        self._lock = threading.Lock()
        self._snapshots: list[Snapshot] = [Snapshot(clock(), initial)]
        self.lag_s = 0.0
        self.stale_s = 0.0

    @property
    def instance_id(self) -> str:
        return self._snapshots[-1].view.instance_id

    def latest(self) -> InstanceView:
        """EC2's current state as last recorded (no lag, no stale)."""
        with self._lock:
            return self._snapshots[-1].view

    def snapshots(self) -> list[Snapshot]:
        """A copy of the kept history, oldest first (for tests and introspection)."""
        with self._lock:
            return list(self._snapshots)

    def set_lag(self, seconds: float) -> None:
        """Show each change ``seconds`` late (0 = current state)."""
        if seconds < 0:
            raise ValueError(f"IMDS lag must be >= 0 seconds, got {seconds}")
        self.lag_s = float(seconds)

    def set_stale(self, seconds: float) -> None:
        """Keep showing removed ENIs/addresses/prefixes for ``seconds`` (0 = never)."""
        if seconds < 0:
            raise ValueError(f"IMDS stale window must be >= 0 seconds, got {seconds}")
        self.stale_s = float(seconds)

    def record(self, view: InstanceView) -> None:
        """Note the instance's state now (call after every mutating EC2 call)."""
        now = self._clock()
        with self._lock:
            if view != self._snapshots[-1].view:
                self._snapshots.append(Snapshot(max(now, self._snapshots[-1].at), view))
            self._prune(now)

    def _prune(self, now: float) -> None:
        horizon = now - max(self._retain_s, self.lag_s + self.stale_s)
        # Keep the snapshot in force at the horizon: drop i while snapshot i+1 already started by then.
        drop = 0
        while drop + 1 < len(self._snapshots) and self._snapshots[drop + 1].at <= horizon:
            drop += 1
        if drop:
            del self._snapshots[:drop]

    def view(self) -> InstanceView:
        """What IMDS shows now, under the current lag and stale settings."""
        now = self._clock()
        with self._lock:
            snaps = list(self._snapshots)
            lag, stale = self.lag_s, self.stale_s
        t = now - lag
        starts = [s.at for s in snaps]
        # Index of the snapshot in force at t; the oldest one if t predates the history.
        base_i = max(bisect.bisect_right(starts, t) - 1, 0)
        if stale <= 0:
            return snaps[base_i].view
        first_i = max(bisect.bisect_right(starts, t - stale) - 1, 0)
        older = [snaps[i].view for i in range(base_i - 1, first_i - 1, -1)]
        return merge_stale(snaps[base_i].view, older) if older else snaps[base_i].view
