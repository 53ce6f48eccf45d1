"""Per-key serialisation of ADD/DEL/CHECK, and GC exclusive of all of them.

ADD and DEL for the same ``(network, container_id, ifname)`` must never interleave: Azure CNS #4829 shows
what happens when they do (an address free in memory but owned on disk). Different keys run
concurrently. GC (CNI 1.1) must not run alongside any ADD/DEL (spec, Lifecycle): it takes the exclusive
side; while it waits, new key holders queue behind it, so a steady stream of ADDs cannot starve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager


class _KeyLock:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class KeyLocks:
    def __init__(self) -> None:
        self._keys: dict[Hashable, _KeyLock] = {}
        self._exclusive = asyncio.Lock()
        self._shared = 0
        self._no_shared = asyncio.Event()
        self._no_shared.set()

    @asynccontextmanager
    async def key(self, key: Hashable) -> AsyncIterator[None]:
        """Hold ``key`` (shared with other keys, exclusive with GC)."""
        if self._exclusive.locked():
            async with self._exclusive:  # queue behind the GC holding or awaiting it (FIFO lock)
                pass
        # No await between here and the increment: a GC cannot slip in unseen.
        self._shared += 1
        self._no_shared.clear()
        try:
            entry = self._keys.get(key)
            if entry is None:
                entry = self._keys[key] = _KeyLock()
            entry.users += 1
            try:
                async with entry.lock:
                    yield
            finally:
                entry.users -= 1
                if entry.users == 0:
                    del self._keys[key]
        finally:
            self._shared -= 1
            if self._shared == 0:
                self._no_shared.set()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold every key: waits for ADD/DEL/CHECK in flight, holds new ones back."""
        async with self._exclusive:
            await self._no_shared.wait()
            yield

    def users(self, key: Hashable) -> int:
        """Requests holding or waiting for ``key`` (for introspection and tests)."""
        entry = self._keys.get(key)
        return 0 if entry is None else entry.users

    @property
    def exclusive_pending(self) -> bool:
        """A GC holds, or waits for, the exclusive side."""
        return self._exclusive.locked()
