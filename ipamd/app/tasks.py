"""ipamd's supervised root tasks, kopf-style: named, watched, and one death stops the daemon.

:func:`supervise` runs the named coroutines until SIGTERM/SIGINT (the ``stop`` event) or until one of them
ends, which for a root task is always a fault (each loops forever). Then every task is cancelled and
given a grace to finish; ``supervise`` returns the name and error of the task that ended, or None for a
clean stop. The caller exits non-zero on a fault, so kubelet restarts ipamd instead of leaving a node
whose pool loop died silently.

The bodies here turn *repeated* unexpected failures into such a fault (a sliding window, not a lifetime
counter), so one bad tick costs one log line with a traceback, and a persistent bug stops the daemon.
:func:`self_probe` is the server's liveness: it PINGs ipamd's own socket the way the plugin connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from vpccni.wire.protocol import Op, Request, decode_response, encode_request

log = logging.getLogger("ipamd.app.main")

CANCEL_GRACE_S = 5.0


class TaskFailed(Exception):
    pass


class FailureWindow:
    """Raises TaskFailed when ``limit`` failures fall within ``window_s`` seconds."""

    def __init__(self, what: str, limit: int = 5, window_s: float = 300.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._limit = limit
        self._window_s = window_s
        self._monotonic = monotonic
        self._times: deque[float] = deque()

    def failed(self, exc: BaseException) -> None:
        now = self._monotonic()
        self._times.append(now)
        while self._times and self._times[0] < now - self._window_s:
            self._times.popleft()
        log.error("%s failed (%d in the last %.0fs): %s", self._what, len(self._times), self._window_s, exc,
                  exc_info=exc)
        if len(self._times) >= self._limit:
            raise TaskFailed(f"{self._what} failed {len(self._times)} times in "
                             f"{self._window_s:.0f}s") from exc


async def supervise(tasks: dict[str, Coroutine[Any, Any, None]],
                    stop: asyncio.Event) -> tuple[str, str] | None:
    running: dict[asyncio.Task[Any], str] = {asyncio.create_task(coro, name=name): name
                                             for name, coro in tasks.items()}
    stopper: asyncio.Task[Any] = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait({*running, stopper}, return_when=asyncio.FIRST_COMPLETED)
    fault: tuple[str, str] | None = None
    for task in done:
        if task is stopper:
            continue
        error = task.exception() if not task.cancelled() else None
        fault = (running[task], repr(error) if error else "ended without an error")
        log.critical("root task %r stopped: %s; stopping ipamd", running[task], fault[1],
                     exc_info=error)
        break
    for task in (*running, stopper):
        task.cancel()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*running, stopper, return_exceptions=True), CANCEL_GRACE_S)
    return fault


async def every(period_s: float, body: Callable[[], Awaitable[object]], *, what: str,
                jitter: float = 0.0, first_delay_s: float | None = None) -> None:
    """Run ``body`` every ``period_s`` (± ``jitter`` as a fraction) forever, under a FailureWindow."""
    failures = FailureWindow(what)
    await asyncio.sleep(period_s if first_delay_s is None else first_delay_s)
    while True:
        try:
            await body()
        except (asyncio.CancelledError, TaskFailed):
            raise
        except Exception as exc:
            failures.failed(exc)
        spread = period_s * jitter
        await asyncio.sleep(period_s + (random.uniform(-spread, spread) if spread else 0.0))


class Wakeup:
    """A period that can be cut short: :meth:`poke` makes the next :meth:`wait` return at once, but never
    sooner than ``min_gap_s`` after the previous one (a burst of ADDs wakes the loop once, not per ADD)."""

    def __init__(self, period_s: float, min_gap_s: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._period_s = period_s
        self._min_gap_s = min(min_gap_s, period_s)
        self._monotonic = monotonic
        self._event = asyncio.Event()
        self._last = monotonic()

    def poke(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        deadline = self._last + self._period_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), max(deadline - self._monotonic(), 0.0))
        gap = self._last + self._min_gap_s - self._monotonic()
        if gap > 0:
            await asyncio.sleep(gap)
        self._event.clear()
        self._last = self._monotonic()


async def self_probe(socket_path: str, *, period_s: float = 5.0, timeout_s: float = 3.0,
                     failures_allowed: int = 3) -> None:
    """PING our own socket forever; raise TaskFailed after ``failures_allowed`` misses in a row."""
    misses = 0
    request = encode_request(Request(op=Op.PING))
    while True:
        await asyncio.sleep(period_s)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(socket_path), timeout_s)
            try:
                writer.write(request)
                line = await asyncio.wait_for(reader.readline(), timeout_s)
            finally:
                writer.close()
            if not decode_response(line).ok:
                raise ValueError("PING answered not ok")
            misses = 0
        except (OSError, TimeoutError, ValueError) as exc:
            misses += 1
            log.error("ipamd's own socket %s did not answer PING (%d in a row): %s", socket_path, misses, exc)
            if misses >= failures_allowed:
                raise TaskFailed(f"socket {socket_path} stopped answering") from exc
