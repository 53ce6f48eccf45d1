"""The bound: the least time the account's buckets allow for the calls a fleet needs. Pure.

A bucket of capacity C refilling at r tokens/s serves n calls no sooner than ``max(0, (n - C) / r)``
seconds after the first: C at once, then one per 1/r. The fleet's calls fall into several buckets
(:mod:`vpccni.cloud.aws.buckets`), which refill side by side, so the fleet needs at least the longest of
those times: that is the bound every policy's time is compared with. It counts the buckets only (no
latency, no ordering between one node's calls), so it is a lower bound any policy can only approach.

:func:`node_calls` counts what one node needs, the way ipamd asks (one DescribeInstances at start, the
start-up sync's DescribeNetworkInterfaces and DescribeSubnets, one AssignPrivateIpAddresses filling the
primary ENI, and per further ENI one DescribeSubnets for discovery, CreateNetworkInterface with its
addresses, DescribeInstances for the device index, AttachNetworkInterface and
ModifyNetworkInterfaceAttribute for DeleteOnTermination): with the warm target (what the policy keeps)
or for the pods alone.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vpccni.cloud.aws.buckets import DOCUMENTED, Bucket, bucket_of

START_CALLS = ("DescribeInstances", "DescribeNetworkInterfaces", "DescribeSubnets")
PER_NEW_ENI = ("DescribeSubnets", "CreateNetworkInterface", "DescribeInstances", "AttachNetworkInterface",
               "ModifyNetworkInterfaceAttribute")


@dataclass(frozen=True)
class BucketLoad:
    bucket: str
    calls: int
    capacity: float
    refill_per_s: float

    @property
    def seconds(self) -> float:
        """The least time for ``calls`` calls from a full bucket."""
        if self.calls <= self.capacity:
            return 0.0
        if self.refill_per_s <= 0:
            return math.inf
        return (self.calls - self.capacity) / self.refill_per_s


@dataclass(frozen=True)
class Bound:
    seconds: float
    binding: str  # the bucket that sets it ("" when no call needs waiting)
    loads: tuple[BucketLoad, ...]


def bound(calls_by_action: Mapping[str, int], buckets: Mapping[str, Bucket] = DOCUMENTED) -> Bound:
    """The bound for these calls (every Describe counted as filtered, as ipamd's are)."""
    per_bucket: Counter[str] = Counter()
    for action, count in calls_by_action.items():
        per_bucket[bucket_of(action)] += count
    loads = tuple(BucketLoad(name, per_bucket[name], buckets[name].capacity, buckets[name].refill_per_s)
                  for name in sorted(per_bucket) if per_bucket[name] > 0)
    worst = max(loads, key=lambda load: load.seconds, default=None)
    if worst is None or worst.seconds == 0:
        return Bound(0.0, "", loads)
    return Bound(worst.seconds, worst.bucket, loads)


def enis_needed(pods: int, addresses_per_eni: int, max_enis: int, *, warm_enis: int = 0) -> int:
    """ENIs (the primary included) holding ``pods`` addresses plus ``warm_enis`` whole free ENIs, as
    WARM_ENI_TARGET grows whole ENIs; never more than the type's ``max_enis``, never fewer than one."""
    if addresses_per_eni <= 0:
        return 1
    return max(1, min(max_enis, math.ceil(pods / addresses_per_eni) + warm_enis))


def node_calls(enis: int) -> Counter[str]:
    """The calls one fresh node makes to reach ``enis`` ENIs (see the module docstring)."""
    calls: Counter[str] = Counter(START_CALLS)
    calls["AssignPrivateIpAddresses"] += 1
    for _ in range(max(enis - 1, 0)):
        calls.update(PER_NEW_ENI)
    return calls


def fleet_calls(per_node_enis: Iterable[int]) -> Counter[str]:
    total: Counter[str] = Counter()
    for enis in per_node_enis:
        total.update(node_calls(enis))
    return total
