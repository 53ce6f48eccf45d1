"""EC2's account-wide request buckets, as the EC2 API reference documents them: the one table.

EC2 throttles per account and region with token buckets: a request takes a token from its bucket, the
bucket refills at a fixed rate up to its capacity, and an empty bucket answers ``RequestLimitExceeded``.
For the actions a CNI calls: AssignPrivateIpAddresses, UnassignPrivateIpAddresses,
CreateNetworkInterface and DeleteNetworkInterface each have a bucket of their own (100 tokens, 5/s);
every other mutating action (AttachNetworkInterface, ModifyNetworkInterfaceAttribute, CreateTags, ...)
shares the mutating bucket (50, 5/s); Describe* share the non-mutating bucket (100, 20/s), or the
stricter unfiltered one (50, 10/s) when a request narrows nothing (no filter, no id, no MaxResults).

Every node of an account draws on these same buckets. The local cloud enforces them
(``ThrottleConfig.aws_documented``), the fleet benchmark computes its bound from them, and a fleet-wide
budget paces against them. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

MUTATING = "mutating"
NON_MUTATING = "non_mutating"
UNFILTERED_NON_MUTATING = "unfiltered_non_mutating"
_READ_VERBS = ("Describe", "Get", "List", "Search")

# Actions with a bucket of their own, of those a CNI calls.
OWN_BUCKET_ACTIONS = (
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "CreateNetworkInterface",
    "DeleteNetworkInterface",
)


@dataclass(frozen=True)
class Bucket:
    capacity: float  # tokens when full: the largest burst
    refill_per_s: float  # tokens added per second, up to capacity


DOCUMENTED: Mapping[str, Bucket] = MappingProxyType({
    MUTATING: Bucket(50, 5),
    NON_MUTATING: Bucket(100, 20),
    UNFILTERED_NON_MUTATING: Bucket(50, 10),
    **{action: Bucket(100, 5) for action in OWN_BUCKET_ACTIONS},
})


def is_mutating(action: str) -> bool:
    return not action.startswith(_READ_VERBS)


def bucket_of(action: str, *, filtered: bool = True) -> str:
    """The documented bucket ``action`` draws from (``filtered``: the request narrowed its result)."""
    if action in OWN_BUCKET_ACTIONS:
        return action
    if is_mutating(action):
        return MUTATING
    return NON_MUTATING if filtered else UNFILTERED_NON_MUTATING
