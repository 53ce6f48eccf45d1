"""A worker that re-applies the dataplane when asked: requests coalesce, and waiters learn when served.

The EC2 layer calls its listeners under its state lock, right after a mutating call and before the reply
is sent. Netlink work there would stall every EC2 call (and could deadlock, since a pass reads EC2 state),
so the listener only bumps a generation counter (:meth:`SyncLoop.request`) and returns. The worker runs a
pass reading EC2's *current* state, so any number of requests made while a pass runs are served by the
next single pass. A waiter holding generation ``g`` is released by the first pass that started after
``g`` was requested — which is what "the dataplane reflects every EC2 change made before I asked" means.

A failed pass is retried after ``retry_after`` seconds even without new requests (transient netlink
errors heal on their own); waiters for the generation it covered get the failure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from vpccni.localcloud.vpc.netlink import DataplaneError

log = logging.getLogger(__name__)


class SyncLoop:
    def __init__(self, run_pass: Callable[[], None], *, name: str, retry_after: float = 0.5) -> None:
        self._run_pass = run_pass
        self._name = name
        self._retry_after = retry_after
        self._cond = threading.Condition()
        self._requested = 0  # generations handed out
        self._served = 0  # highest generation covered by a successful pass
        self._failed = 0  # highest generation covered by a failed pass (if later than _served)
        self._error: BaseException | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def request(self) -> int:
        """Ask for a pass; returns the generation to wait for. Cheap, never blocks on a pass."""
        with self._cond:
            self._requested += 1
            self._cond.notify_all()
            return self._requested

    def latest(self) -> int:
        with self._cond:
            return self._requested

    def wait(self, generation: int, timeout: float) -> None:
        """Block until a pass covering ``generation`` succeeded; raise if it failed or time ran out."""
        with self._cond:
            served = self._cond.wait_for(
                lambda: self._served >= generation or self._failed >= generation or self._stopping,
                timeout=timeout,
            )
            if self._served >= generation:
                return
            if self._failed >= generation and self._error is not None:
                raise DataplaneError(f"dataplane sync failed: {self._error}") from self._error
            if self._stopping:
                raise DataplaneError("dataplane is closed")
            if not served:
                raise DataplaneError(f"dataplane did not catch up with EC2 within {timeout:g} s")

    @property
    def last_error(self) -> BaseException | None:
        with self._cond:
            return self._error

    def _loop(self) -> None:
        while True:
            with self._cond:
                retrying = self._error is not None
                self._cond.wait_for(
                    lambda: self._stopping or self._requested > max(self._served, self._failed),
                    timeout=self._retry_after if retrying else None,
                )
                if self._stopping:
                    return
                generation = self._requested
            try:
                self._run_pass()
            except Exception as exc:
                log.warning("%s: pass failed (will retry): %s", self._name, exc)
                with self._cond:
                    self.passes += 1
                    self._failed, self._error = generation, exc
                    self._cond.notify_all()
                continue
            with self._cond:
                self.passes += 1
                self._served, self._error = generation, None
                self._cond.notify_all()
