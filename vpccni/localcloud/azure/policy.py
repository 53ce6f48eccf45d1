"""What every ARM request of the local Azure goes through before its semantics: action names, throttling,
latency profiles and the control plane, built from the EC2 local cloud's pieces.

Actions (the names faults, latency, throttling and counters use): ``GetNetworkInterface``,
``ListNetworkInterfaces``, ``PutNetworkInterface``, ``GetSubnet``, ``GetVirtualNetwork``,
``GetVirtualMachine``, ``GetOperationStatus`` (one LRO poll), and two that are not requests:
``NetworkInterfaceOperation`` (how long a NIC write's long-running operation runs; a fault on it makes the
operation end ``Failed`` with the fault's code, the write itself staying applied and the NIC ``Failed``) and
``PutNetworkInterface/answer`` (faults consulted *after* a NIC write was applied: a timeout there is ARM
acting and the answer being lost).

Throttling: since 2024 ARM throttles each subscription and principal with token buckets per region:
reads 250 tokens refilling 25/s, writes 200 refilling 10/s ("Understand how Azure Resource Manager
throttles requests", "Regional throttling and token bucket algorithm"). An empty bucket answers 429 with
``Retry-After`` (seconds), and every answer carries ``x-ms-ratelimit-remaining-subscription-reads`` (GET)
or ``-writes`` (other methods), which is how a client sees the bucket drain. The EC2 layer's
:class:`~vpccni.localcloud.ec2.throttle.Throttler` is the bucket arithmetic; Get*/List* draw on the
read bucket, everything else on the write bucket.
"""

from __future__ import annotations

import math

from vpccni.localcloud.ec2.latency import Latency, LatencyProfile
from vpccni.localcloud.ec2.throttle import MUTATING, NON_MUTATING, BucketSpec, ThrottleConfig, Throttler

GET_NIC = "GetNetworkInterface"
LIST_NICS = "ListNetworkInterfaces"
PUT_NIC = "PutNetworkInterface"
GET_SUBNET = "GetSubnet"
GET_VM = "GetVirtualMachine"
GET_VNET = "GetVirtualNetwork"
GET_OPERATION = "GetOperationStatus"
NIC_OPERATION = "NetworkInterfaceOperation"
PUT_NIC_ANSWER = "PutNetworkInterface/answer"

THROTTLE_CODE = "SubscriptionRequestsThrottled"
READ_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
WRITE_HEADER = "x-ms-ratelimit-remaining-subscription-writes"


def arm_throttle_config() -> ThrottleConfig:
    """ARM's published per-subscription buckets: reads 250 at 25/s, writes 200 at 10/s."""
    return ThrottleConfig(buckets={NON_MUTATING: BucketSpec(250, 25), MUTATING: BucketSpec(200, 10)})


def retry_after_s(throttler: Throttler, action: str) -> int:
    """Whole seconds until ``action``'s bucket holds a token again (ARM's Retry-After is in seconds)."""
    config = throttler.config
    cls = config.class_of(action)
    spec = config.buckets[cls]
    missing = max(0.0, 1.0 - throttler.tokens()[cls])
    return max(1, math.ceil(missing / spec.refill_per_s)) if spec.refill_per_s > 0 else 60


def remaining_header(throttler: Throttler, action: str, method: str) -> tuple[str, str]:
    """The ``x-ms-ratelimit-remaining-subscription-*`` header for an answer to ``method``."""
    cls = throttler.config.class_of(action)
    return (READ_HEADER if method == "GET" else WRITE_HEADER), str(max(0, int(throttler.tokens()[cls])))


# NIC writes take a few hundred ms to be accepted and their operation about a second to finish; reads are
# quick. Realistic Retry-After on a NIC operation is longer on real ARM (~10 s); 1 s keeps tests short.
_REALISTIC_DELAYS_S = {PUT_NIC: 0.3, NIC_OPERATION: 1.0, GET_OPERATION: 0.05}


def azure_profile(name: str) -> LatencyProfile:
    """The local Azure's built-in profile ``name`` (``fast`` or ``realistic``)."""
    if name == "fast":
        return LatencyProfile.fast()
    if name == "realistic":
        return LatencyProfile("realistic", dict(_REALISTIC_DELAYS_S), describe_s=0.05, mutate_s=0.2)
    raise ValueError(f"unknown latency profile {name!r}: expected one of fast, realistic")


class AzureLatency(Latency):
    """The EC2 layer's latency settings with Azure's profiles behind the same names."""

    def __init__(self, profile: str | LatencyProfile = "fast") -> None:
        super().__init__(azure_profile(profile) if isinstance(profile, str) else profile)

    def use(self, profile: str | LatencyProfile) -> None:
        super().use(azure_profile(profile) if isinstance(profile, str) else profile)
