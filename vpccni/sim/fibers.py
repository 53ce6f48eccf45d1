"""Blocking code on a virtual clock: each call runs in a fiber, a thread that runs only while the loop
waits for it, and whose sleeps are the loop's virtual sleeps.

ipamd's cloud calls are blocking (boto3; the daemon runs them in worker threads). Inside one call the
code may wait: for a token of the API budget, between retries, for the cloud's latency. In the
simulator those waits must pass in virtual time while the other nodes go on. A fiber gives exactly
that without touching the code: :meth:`Fibers.call` hands the function to a thread and blocks the loop
until the thread either returns or calls :func:`sleep`; a sleep hands the baton back to the loop, which
awaits ``asyncio.sleep`` (virtual) and then resumes the thread. One thread runs at a time (the baton), so
runs are deterministic for a given seed, and no code needs a lock it did not already have.

Threads are reused: a fiber that finished waits for the next call. Many fibers may be parked in a
sleep at once (one per node waiting on the budget), so the pool grows as needed; a thread's stack is
small because the code it runs is shallow.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_STACK_BYTES = 512 * 1024
_local = threading.local()


class _Worker:
    """One reusable thread and its baton."""

    def __init__(self, pool: Fibers) -> None:
        self._pool = pool
        self._go = threading.Semaphore(0)  # the loop hands the baton to the thread
        self._back = threading.Semaphore(0)  # the thread hands it back
        self._job: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None
        self._outcome: tuple[str, Any] = ("done", None)
        self._thread = threading.Thread(target=self._main, name="sim-fiber", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        _local.worker = self
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return  # closed
            fn, args, kwargs = job
            try:
                self._outcome = ("done", fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                self._outcome = ("raised", exc)
            self._job = None
            self._back.release()

    def resume(self) -> tuple[str, Any]:
        self._go.release()
        self._back.acquire()
        return self._outcome

    def park(self, seconds: float) -> None:
        """Called in this worker's thread: give the baton back for ``seconds`` of virtual time."""
        self._outcome = ("sleep", seconds)
        self._back.release()
        self._go.acquire()

    def close(self) -> None:
        self._job = None
        self._go.release()
        self._thread.join(timeout=5)


class Fibers:
    """Runs blocking calls as fibers of the running (virtual-time) event loop."""

    def __init__(self) -> None:
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self.calls = 0
        self.sleeps = 0

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a fiber; its :func:`sleep` calls pass as virtual time."""
        worker = self._idle.pop() if self._idle else self._spawn()
        worker._job = (fn, args, kwargs)
        self.calls += 1
        try:
            while True:
                kind, value = worker.resume()
                if kind == "done":
                    return value  # type: ignore[no-any-return]
                if kind == "raised":
                    raise value
                self.sleeps += 1
                await asyncio.sleep(value)
        finally:
            # A call cancelled while parked would leave its thread mid-function: it is not reused.
            if worker._job is None:
                self._idle.append(worker)

    def _spawn(self) -> _Worker:
        previous = threading.stack_size(_STACK_BYTES)
        try:
            worker = _Worker(self)
        finally:
            threading.stack_size(previous)
        self._all.append(worker)
        return worker

    @property
    def threads(self) -> int:
        return len(self._all)

    def close(self) -> None:
        for worker in self._idle:
            worker.close()
        self._idle.clear()


def in_fiber() -> bool:
    return getattr(_local, "worker", None) is not None


def sleep(seconds: float) -> None:
    """The sleep to give blocking code (``ApiBudget``, ``CallRunner``, the cloud's latency): in a fiber,
    ``seconds`` of virtual time pass while the other tasks run; outside one it is an error (a blocking
    wait on the loop's own thread would stop the simulated world)."""
    worker: _Worker | None = getattr(_local, "worker", None)
    if worker is None:
        raise RuntimeError("vpccni.sim.fibers.sleep called outside a fiber")
    if seconds > 0:
        worker.park(seconds)
