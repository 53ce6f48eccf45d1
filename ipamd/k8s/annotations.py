"""ANNOTATE_POD_IP: ``vpc.amazonaws.com/pod-ips`` on each pod, kept off the ADD/DEL path.

aws-node patches the pod inside AddNetwork, so every ADD waits for the API server (and fails slowly when
it is unreachable). Here the pod network is wrapped: a successful setup queues "annotate", a teardown of
an address we held queues "clear"; one worker applies them in order through :mod:`ipamd.k8s.integration` in a
thread. Order matters (a DEL then an ADD of the same pod must leave the new address), and one FIFO worker
keeps it; the agent's ``clear_pod_ip`` only blanks the annotation if it still holds the released address.
An unreachable API server costs a log line per update, never an ADD. The queue is bounded: past
MAX_PENDING updates the oldest is dropped with a warning (a later update of that pod overwrites it anyway).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Literal

from ipamd.dataplane.pod import PodNetwork
from ipamd.k8s.integration import K8sNodeAgent
from vpccni.errors import KubernetesError
from vpccni.net.nsutil import NetnsFd
from vpccni.wire.protocol import AllocationResult, Request

log = logging.getLogger("ipamd.k8s.annotations")

MAX_PENDING = 1000

Update = tuple[Literal["annotate", "clear"], str, str, str]  # (what, namespace, name, ip)


class PodIpAnnotator:
    def __init__(self, agent: K8sNodeAgent) -> None:
        self._agent = agent
        self._pending: deque[Update] = deque()
        self._wake = asyncio.Event()

    def queue(self, update: Update) -> None:
        if len(self._pending) >= MAX_PENDING:
            dropped = self._pending.popleft()
            log.warning("pod IP annotations: %d pending, dropped %s of %s/%s", MAX_PENDING, *dropped[:3])
        self._pending.append(update)
        self._wake.set()

    async def run(self) -> None:
        """The ``pod-annotations`` root task."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._apply(self._pending.popleft())

    async def _apply(self, update: Update) -> None:
        what, namespace, name, ip = update
        call = self._agent.annotate_pod_ip if what == "annotate" else self._agent.clear_pod_ip
        try:
            await asyncio.to_thread(call, namespace, name, ip)
        except KubernetesError as exc:
            log.warning("pod IP annotation (%s %s/%s %s): %s", what, namespace, name, ip, exc)


class AnnotatingPodNetwork:
    """A PodNetwork that queues the pod's IP annotation after the inner one did its work."""

    def __init__(self, inner: PodNetwork, annotator: PodIpAnnotator) -> None:
        self._inner = inner
        self._annotator = annotator

    async def setup(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> AllocationResult:
        done = await self._inner.setup(alloc, req, ns)
        if req.pod.namespace and req.pod.name:
            self._annotator.queue(("annotate", req.pod.namespace, req.pod.name, done.ipv4))
        return done

    async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
        await self._inner.teardown(alloc, req, ns)
        if alloc is not None and req.pod.namespace and req.pod.name:
            self._annotator.queue(("clear", req.pod.namespace, req.pod.name, alloc.ipv4))

    async def check(self, alloc: AllocationResult, req: Request, ns: NetnsFd) -> list[str]:
        return await self._inner.check(alloc, req, ns)
