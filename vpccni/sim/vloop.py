"""A virtual-time asyncio loop: time jumps to the next timer whenever every task waits.

The simulator runs ipamd's own async code (the pool loop, the reconciler, the request handler's
wake-ups) unchanged, thousands of nodes in one process. Real time would make a 40-minute fleet boot
take 40 minutes; this loop's :meth:`VirtualTimeLoop.time` is a number the loop itself moves: when
nothing is ready to run, instead of sleeping until the earliest timer it sets the clock to that timer.
Everything that reads ``loop.time()`` (``asyncio.sleep``, ``wait_for``, ``call_later``) sees virtual
seconds; code that takes an injectable clock is given :meth:`VirtualTimeLoop.time` too.

Only the event loop's own timers move time. A blocking call that wants to wait (the API budget, the
retry back-off, the cloud's latency) runs in a :mod:`vpccni.sim.fibers` fiber, which hands its wait to
the loop as an ``asyncio.sleep``. A loop that has nothing ready and no timer left is deadlocked (every
task waits on something that can never happen): that raises :class:`Deadlock` instead of hanging.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(RuntimeError):
    """Nothing is ready and no timer is due: the simulated world can never move again."""


class _VirtualSelector(selectors.DefaultSelector):
    """The loop's selector: polls real file descriptors without blocking, and spends the wait the loop
    asked for by moving the virtual clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0 or self.loop is None:
            return ready
        if timeout is None:
            raise Deadlock("every task waits and no timer is set: the simulation cannot advance")
        self.loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock starts at 0 and moves only to the next due timer."""

    def __init__(self) -> None:
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward (the selector does this; never backwards)."""
        if seconds > 0:
            self._now += seconds


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh :class:`VirtualTimeLoop` (like ``asyncio.run``)."""
    loop = VirtualTimeLoop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
