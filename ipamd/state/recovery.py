"""Restart recovery: rebuild the datastore from what EC2 shows on our ENIs plus the checkpoint.

EC2 is the truth for which addresses this node holds (never IMDS alone, aws #1967/#3887): the reconciler
fetches the ENIs and their CIDRs and passes them in as plain :class:`DescribedEni` data. The checkpoint says
who held what. An allocation survives when its address is still on one of our ENIs, its key is not a
duplicate and its pod still exists on the host (``pod_exists``; plumbing supplies the veth check later,
until then every pod is presumed alive). Everything else is dropped and reported, never silently. When
two allocations claim one address the older one keeps it (the newer ADD cannot have been answered with
an address that was durably held by someone else, so the older record is the true one).

Cooldowns are restored with their wall-clock release time, so an address released just before a restart
still cools after it (aws #1127). The caller commits afterwards when :attr:`RecoveryReport.needs_commit`
(anything dropped, or an aws-node checkpoint to rewrite in our format).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ipamd.state.checkpoint import VERSION, CheckpointData
from ipamd.state.datastore import AddressUnavailable, Allocation, Datastore, DatastoreError


@dataclass(frozen=True, slots=True)
class DescribedEni:
    """One ENI as EC2 describes it: ``cidrs`` are its secondary /32s and /28 prefixes (not the primary
    address, which never serves pods)."""

    eni_id: str
    device_number: int
    is_primary: bool
    subnet_cidr: str = ""
    cidrs: tuple[str, ...] = ()
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class DroppedAllocation:
    allocation: Allocation
    reason: str


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    kept: tuple[Allocation, ...]
    dropped: tuple[DroppedAllocation, ...]
    cooldown_restored: int
    cooldown_dropped: int  # expired, or the address is gone or assigned
    source_format: str | None  # None: no checkpoint (fresh node)

    @property
    def needs_commit(self) -> bool:
        return bool(self.dropped) or (self.source_format not in (None, VERSION))


def _always(_: Allocation) -> bool:
    return True


def recover(
    datastore: Datastore,
    checkpoint: CheckpointData | None,
    enis: Sequence[DescribedEni],
    *,
    pod_exists: Callable[[Allocation], bool] = _always,
) -> RecoveryReport:
    """Fill an empty ``datastore`` from ``enis`` (EC2's view) and ``checkpoint``; report what was kept."""
    if datastore.enis() or datastore.allocations():
        raise DatastoreError("recovery needs an empty datastore")
    for view in enis:
        datastore.add_eni(view.eni_id, view.device_number, view.is_primary, view.subnet_cidr,
                          excluded=view.excluded)
        datastore.add_cidrs(view.eni_id, view.cidrs)
    if checkpoint is None:
        return RecoveryReport((), (), 0, 0, None)

    kept: list[Allocation] = []
    dropped: list[DroppedAllocation] = []
    for record in sorted(checkpoint.allocations, key=lambda a: a.assigned_at):
        if not pod_exists(record):
            dropped.append(DroppedAllocation(record, "the pod's interface no longer exists on this host"))
            continue
        try:
            kept.append(datastore.restore(record))
        except AddressUnavailable as exc:
            dropped.append(DroppedAllocation(record, str(exc)))

    restored = sum(1 for c in checkpoint.cooldown if datastore.restore_cooldown(c.address, c.released_at))
    return RecoveryReport(tuple(kept), tuple(dropped), restored,
                          len(checkpoint.cooldown) - restored, checkpoint.format)
