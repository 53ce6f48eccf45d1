"""The recent peak of addresses in use: a sliding maximum the caller feeds once per pool tick.

Shrink decisions look at this peak instead of the current count (``PoolState.peak_in_use``), the
scale-down stabilization window of Kubernetes' HPA: a pool that needed an ENI ten minutes ago keeps it
through a dip, instead of freeing it and creating it again at the next peak (5 EC2 calls per swing).
Growth never waits for it. Time is passed in, so this stays free of clock reads like the rest of the
pool math; a monotonic deque makes each observation O(1) amortized.
"""

from __future__ import annotations

from collections import deque

DEFAULT_PEAK_WINDOW_S = 600.0


class PeakWindow:
    def __init__(self, window_s: float = DEFAULT_PEAK_WINDOW_S) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, got {window_s}")
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()  # (time, in use), values strictly decreasing

    def observe(self, now: float, in_use: int) -> int:
        """Record ``in_use`` at ``now``; the most in use at any sample of the last ``window_s``."""
        samples = self._samples
        while samples and samples[-1][1] <= in_use:
            samples.pop()  # a later, larger sample outlives it: it can never be the peak again
        samples.append((now, in_use))
        while samples[0][0] <= now - self.window_s and len(samples) > 1:
            samples.popleft()
        return samples[0][1]

    def reset(self) -> None:
        """Forget the history (e.g. after a restart, when the counts are not comparable)."""
        self._samples.clear()
