"""Pod plumbing as the server sees it: one small interface, so the netlink code slots in later.

The server calls :meth:`PodNetwork.setup` after an assignment is durable, :meth:`PodNetwork.teardown`
before a release, and :meth:`PodNetwork.check` for CNI CHECK. The pod's namespace is the descriptor the
plugin passed (checked by :mod:`ipamd.dataplane.netns`), valid while the call runs: an implementation that
keeps using it afterwards (a worker thread the caller stopped waiting for) takes its own copy first.
The real implementation wraps ``vpccni.net`` (veth, /32 address, routes, rules, static neighbour) and
runs blocking netlink calls in a thread; :class:`NullPodNetwork` plumbs nothing and is what unit tests
and ``vpccni bench rpc`` use.

Contract for implementations:

* ``setup`` is idempotent (a repeated ADD re-plumbs over leftovers) and returns the allocation with the
  interface names and MACs filled in. Raising means nothing usable was left behind: the server rolls the
  assignment back and answers ``plumbing``.
* ``teardown`` treats a missing link, rule or ``prevResult`` as already done, and without a namespace does
  the host side only (deleting the host veth takes its peer along); it raises only when
  something that exists could not be removed (the server then keeps the address and fails the DEL, so the
  runtime retries instead of the address being reused under a stale route).
* ``check`` returns one line per problem found; empty means healthy.
"""

from __future__ import annotations

from typing import Protocol

from vpccni.net.nsutil import NetnsFd
from vpccni.wire.protocol import AllocationResult, Request


class PodNetwork(Protocol):
    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        """Plumb ``alloc`` into the namespace ``ns`` as ``req.ifname``; return it with ifnames and MACs
        set."""
        ...

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        """Remove what setup made (``ns``: the pod's namespace if it still exists). ``alloc`` is None when
        ipamd holds nothing for the key: use ``req.prev_result`` if there is one."""
        ...

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        """What is missing or wrong with the pod's plumbing, one line each."""
        ...


class NullPodNetwork:
    """Plumbs nothing: the IPAM path alone (unit tests, the RPC benchmark)."""

    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        return alloc  # the handler already filled in everything but host-side names and MACs

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        return None

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        return []
