"""A replay's figures, as ``vpccni tune`` prints them for one setting. Pure.

EC2 mutating calls per 1,000 pods and per hour at the node's own rate (the journal's span), idle
addresses (free: neither assigned nor cooling) mean and peak, addresses the node holds from its subnet
(every private address of its ENIs, primaries included) mean and peak, ADDs that had to wait and how long
(p50/p99 over the pods that waited; a pod that left before it got an address counts with the time it
waited), and the time the pool spent blocked at the ENI limit. Means are over the samples (one per
pool-loop period).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from vpccni.cloud.aws.buckets import is_mutating
from vpccni.sim.replay import Replay, Sample
from vpccni.sim.summary import percentile


@dataclass(frozen=True)
class Forecast:
    name: str
    env: Mapping[str, str]
    pods: int
    hours: float
    mutating_calls: int
    mutating_per_1000_pods: float
    mutating_per_hour: float
    calls_by_action: Mapping[str, int]
    idle_mean: float
    idle_peak: int
    subnet_mean: float
    subnet_peak: int
    in_use_mean: float
    adds_waited: int
    wait_p50_s: float
    wait_p99_s: float
    never_addressed: int
    eni_limit_s: float
    timeline: tuple[tuple[float, int, int], ...]  # (t, held, in use), for the picture

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["env"] = dict(self.env)
        out["calls_by_action"] = dict(self.calls_by_action)
        return out


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def forecast(name: str, replay: Replay, *, timeline_points: int = 400) -> Forecast:
    samples: Sequence[Sample] = replay.samples
    mutating = sum(n for action, n in replay.calls.items() if is_mutating(action))
    hours = max(replay.duration_s / 3600, 1e-9)
    waits = sorted(replay.waits)
    step = max(1, len(samples) // timeline_points)
    eni_limit = sum(b.t - a.t for a, b in zip(samples, samples[1:], strict=False) if a.at_eni_limit)
    return Forecast(
        name=name, env=dict(replay.env), pods=replay.pods, hours=round(hours, 4),
        mutating_calls=mutating,
        mutating_per_1000_pods=round(mutating * 1000 / replay.pods, 2) if replay.pods else 0.0,
        mutating_per_hour=round(mutating / hours, 2),
        calls_by_action=dict(sorted(replay.calls.items())),
        idle_mean=_mean([s.free for s in samples]), idle_peak=max((s.free for s in samples), default=0),
        subnet_mean=_mean([s.subnet for s in samples]),
        subnet_peak=max((s.subnet for s in samples), default=0),
        in_use_mean=_mean([s.in_use for s in samples]),
        adds_waited=len(waits), wait_p50_s=round(percentile(waits, 50), 3),
        wait_p99_s=round(percentile(waits, 99), 3), never_addressed=replay.never,
        eni_limit_s=round(eni_limit, 1),
        timeline=tuple((round(s.t, 1), s.held, s.in_use) for s in samples[::step]),
    )
