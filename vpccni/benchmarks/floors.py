"""Floors: what the hardware allows, measured in the same run as the figure they qualify.

The fsync floor is a loop of (overwrite a small file, fsync) in the benchmark's directory: one durable
write per operation with no rename and no directory fsync. A durable RPC without group commit costs more
than one such operation, so RPCs/s above the floor is what batching buys.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from vpccni.benchmarks.stats import LatencySummary


@dataclass(frozen=True)
class Floor:
    ops_per_s: float
    latency: LatencySummary


def fsync_floor(directory: str, seconds: float = 0.5, payload_bytes: int = 256) -> Floor:
    """Measure small-file fsyncs in ``directory`` for about ``seconds``; the file is removed after."""
    path = os.path.join(directory, f".fsync-floor-{os.getpid()}")
    payload = b"x" * payload_bytes
    samples: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        start = time.perf_counter()
        end = start + seconds
        now = start
        while now < end:
            os.pwrite(fd, payload, 0)
            os.fsync(fd)
            after = time.perf_counter()
            samples.append(after - now)
            now = after
        elapsed = now - start
    finally:
        os.close(fd)
        os.unlink(path)
    return Floor(len(samples) / elapsed if elapsed > 0 else 0.0, LatencySummary.of(samples))
