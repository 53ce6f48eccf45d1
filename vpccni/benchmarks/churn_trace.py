"""The pod churn trace of ``vpccni bench churn``: seeded, in cluster seconds, replayed on a faster clock.

Pods arrive as a Poisson process and live an exponentially distributed time (an M/M/inf queue), so the
number of pods alive hovers around ``concurrency`` (mean = arrival rate x mean lifetime, standard
deviation about its square root: ~20 +- 4.5). Lifetimes have a floor so no pod is deleted before kubelet
could plausibly have started it. Everything is drawn from one ``random.Random(seed)``: the same seed
gives the same trace, so the two settings compared in one run see exactly the same pods.

:class:`TimeScale` maps the trace's cluster seconds onto wall seconds and ipamd's timers with it: a
scale of 100 plays 100 cluster seconds per wall second, and every timer (pool loop, release spacing,
cooldown, ENI age, reconcile period, ...) is divided by 100 so the daemon behaves as it would in real
time. Rates are multiplied by the same factor: the refill of ipamd's API budget and of the cloud's
throttling buckets (AWS's 5/s mutating, 20/s describe), so a budget sized for real time meets a day of
churn played in minutes exactly as it would meet the day. Burst sizes are counts, not rates: unscaled.
What stays on the wall clock: the AIMD recovery interval inside the budget and the 1 s floor of ipamd's
IMDS checks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MIN_LIFETIME_S = 10.0


@dataclass(frozen=True)
class PodLife:
    name: str
    arrive_s: float  # cluster seconds since the trace began
    lifetime_s: float

    @property
    def depart_s(self) -> float:
        return self.arrive_s + self.lifetime_s


def churn_trace(seed: int, pods: int, concurrency: float, mean_lifetime_s: float) -> list[PodLife]:
    if pods < 1 or concurrency <= 0 or mean_lifetime_s <= MIN_LIFETIME_S:
        raise ValueError(f"need pods >= 1, concurrency > 0, mean lifetime > {MIN_LIFETIME_S}s")
    rng = random.Random(seed)
    rate = concurrency / mean_lifetime_s
    # The floor adds to the mean; draw the rest so the mean lifetime stays as asked.
    spread = mean_lifetime_s - MIN_LIFETIME_S
    t = 0.0
    trace = []
    for n in range(pods):
        t += rng.expovariate(rate)
        trace.append(PodLife(f"pod{n:05d}", t, MIN_LIFETIME_S + rng.expovariate(1.0 / spread)))
    return trace


def peak_concurrency(trace: list[PodLife]) -> int:
    events = sorted([(p.arrive_s, 1) for p in trace] + [(p.depart_s, -1) for p in trace])
    alive = peak = 0
    for _, step in events:
        alive += step
        peak = max(peak, alive)
    return peak


@dataclass(frozen=True)
class TimeScale:
    """Cluster seconds per wall second, and ipamd's timers for it (aws-node's defaults, scaled)."""

    factor: float

    def wall(self, cluster_s: float) -> float:
        return cluster_s / self.factor

    def ipamd_rates(self) -> dict[str, str]:
        """ipamd's API budget refill rates (VPCCNI_API_*_REFILL defaults), scaled."""
        return {"VPCCNI_API_MUTATING_REFILL": f"{0.5 * self.factor:g}",
                "VPCCNI_API_DESCRIBE_REFILL": f"{2.0 * self.factor:g}"}

    def ipamd_timers(self) -> dict[str, str]:
        defaults = {  # variable -> aws-node's (or our) default, cluster seconds
            "VPCCNI_POOL_LOOP_PERIOD": 5.0,
            "VPCCNI_RELEASE_SPACING": 30.0,
            "IP_COOLDOWN_PERIOD": 30.0,
            "VPCCNI_MIN_ENI_AGE": 60.0,
            "VPCCNI_EC2_RECONCILE_PERIOD": 60.0,
            "VPCCNI_SUBNET_FULL_BACKOFF": 120.0,
            "VPCCNI_SCALE_DOWN_WINDOW": 600.0,
            "VPCCNI_LEAKED_ENI_GC_INTERVAL": 3600.0,
            "VPCCNI_LEAKED_ENI_GC_GRACE": 300.0,
        }
        return {name: f"{self.wall(seconds):g}" for name, seconds in defaults.items()}
