"""Leaked-ENI GC: delete ENIs ipamd created that were left detached ("available") by a crash.

Create -> attach and detach -> delete are two EC2 calls each; a node or ipamd that dies between them
leaves an available ENI holding subnet addresses forever (aws #69, #608). Every node sweeps, as aws-node
does: DescribeNetworkInterfaces filtered on our owner tag (``node.k8s.amazonaws.com/instance_id``),
status ``available``, this VPC, and the cluster tag when CLUSTER_NAME is set. A candidate must also
carry aws-node's description prefix ``aws-K8S-`` and a ``createdAt`` tag older than the grace
(VPCCNI_LEAKED_ENI_GC_GRACE); one without ``createdAt`` is dated now and left for later. Unlike aws-node,
a candidate is deleted only when seen in two consecutive sweeps (kuryr's rule): an ENI some node is about
to attach, or one an operator is moving, survives a sweep that catches it mid-flight.

The sweep never touches an attached ENI, another VPC's, another cluster's, or one without our tag. Its
record of the last deletions is served on /v1/pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from vpccni.cloud.aws.tags import (
    DESCRIPTION_PREFIX,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_INSTANCE_ID,
    format_created_at,
    parse_created_at,
)
from vpccni.cloud.base import CloudProvider, NetworkInterface
from vpccni.errors import CloudError

log = logging.getLogger("ipamd.reconcile.leaks")


@dataclass(frozen=True)
class DeletedEni:
    eni_id: str
    first_seen_sweep: int
    deleted_in_sweep: int
    created_at: str


class LeakedEniSweeper:
    def __init__(self, provider: CloudProvider, *, vpc_id: str, cluster_name: str | None, grace_s: float,
                 lock: asyncio.Lock | None = None, clock: Callable[[], float] = time.time) -> None:
        """``lock``: held around deletions (the reconciler's, so a sweep never races its create->attach)."""
        self._provider = provider
        self._vpc_id = vpc_id
        self._cluster_name = cluster_name
        self._grace_s = grace_s
        self._lock = lock or asyncio.Lock()
        self._clock = clock
        self._seen: dict[str, int] = {}  # candidate -> the sweep that first saw it (in an unbroken run)
        self.sweeps = 0
        self.deleted: deque[DeletedEni] = deque(maxlen=50)
        self.last_sweep_at: float | None = None

    def _age_s(self, eni: NetworkInterface) -> float | None:
        created = parse_created_at(eni.tag(TAG_CREATED_AT) or "")
        return None if created is None else self._clock() - created.timestamp()

    async def sweep(self) -> list[str]:
        """One sweep; returns the ENIs deleted."""
        self.sweeps += 1
        self.last_sweep_at = self._clock()
        required = {TAG_CLUSTER_NAME: self._cluster_name} if self._cluster_name else None
        found = await asyncio.to_thread(self._provider.describe_leaked_interfaces, vpc_id=self._vpc_id,
                                        owner_tag_key=TAG_INSTANCE_ID, required_tags=required)
        candidates: list[NetworkInterface] = []
        undated: list[str] = []
        for eni in found:
            if eni.status != "available" or eni.attachment is not None:
                continue
            if not eni.description.startswith(DESCRIPTION_PREFIX) or eni.vpc_id != self._vpc_id:
                continue
            age = self._age_s(eni)
            if age is None:
                undated.append(eni.interface_id)
            elif age >= self._grace_s:
                candidates.append(eni)
        if undated:
            stamp = format_created_at(datetime.fromtimestamp(self._clock(), UTC))
            await asyncio.to_thread(self._provider.create_tags, undated, {TAG_CREATED_AT: stamp})
        seen_now: dict[str, int] = {}
        deleted: list[str] = []
        for eni in candidates:
            first = self._seen.get(eni.interface_id)
            if first is None:
                seen_now[eni.interface_id] = self.sweeps  # first sighting: wait for the next sweep
                continue
            async with self._lock:
                gone = await self._delete(eni)
            if gone:
                deleted.append(eni.interface_id)
                self.deleted.append(DeletedEni(eni.interface_id, first, self.sweeps,
                                               eni.tag(TAG_CREATED_AT) or ""))
            else:
                seen_now[eni.interface_id] = first
        self._seen = seen_now
        if deleted:
            log.info("deleted leaked ENIs %s", deleted)
        return deleted

    async def _delete(self, eni: NetworkInterface) -> bool:
        try:
            await asyncio.to_thread(self._provider.delete_interface, eni.interface_id)
        except CloudError as exc:
            log.warning("could not delete leaked ENI %s: %s", eni.interface_id, exc)
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "sweeps": self.sweeps,
            "last_sweep_at": self.last_sweep_at,
            "pending": sorted(self._seen),
            "deleted": [asdict(d) for d in self.deleted],
        }
