"""Latency summaries shared by the benchmarks (nearest-rank percentiles over all samples)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted samples; 0.0 for no samples."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0-100")
    if not sorted_samples:
        return 0.0
    rank = max(1, math.ceil(q / 100.0 * len(sorted_samples)))
    return sorted_samples[rank - 1]


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_s: float
    p99_s: float
    max_s: float
    mean_s: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> LatencySummary:
        ordered = sorted(samples)
        if not ordered:
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        return cls(len(ordered), percentile(ordered, 50), percentile(ordered, 99), ordered[-1],
                   sum(ordered) / len(ordered))

    def as_ms(self) -> dict[str, float]:
        return {name: round(getattr(self, f"{name}_s") * 1000.0, 4) for name in ("p50", "p99", "max", "mean")}


def machine_load() -> dict[str, float]:
    """CPU count and 1-minute load average, printed with every figure so noise can be judged."""
    return {"cpus": float(os.cpu_count() or 1), "load_1m": round(os.getloadavg()[0], 2)}
