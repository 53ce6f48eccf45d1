"""vpccni.localcloud: an EC2-faithful local cloud (moto + EC2 semantics + throttling + faults + latency,
one IMDSv2 per node), for our tests, ``make demo`` and users' own tests.

Start with :class:`LocalCloud` (the facade); the EC2 layer (:class:`Ec2Server` and its settings types)
and the IMDS server are exported for tests that need them directly.

Names are resolved lazily (PEP 562): importing this package, or a light submodule such as ``model``,
does not import moto or boto3. Only touching ``LocalCloud``/``Ec2Server`` does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpccni.localcloud.cloud import LocalCloud, Node, Subnet, Vpc, is_known_instance_type
    from vpccni.localcloud.ec2_control import Ec2ControlClient
    from vpccni.localcloud.ec2_counters import ActionCounters
    from vpccni.localcloud.ec2_faults import FaultInjector, FaultRule
    from vpccni.localcloud.ec2_latency import PROFILE_NAMES, LatencyProfile
    from vpccni.localcloud.ec2_state import InstanceTypeLimits, limits_for
    from vpccni.localcloud.ec2_throttle import BucketSpec, ThrottleConfig
    from vpccni.localcloud.ec2server import Ec2Server
    from vpccni.localcloud.imds import ImdsServer
    from vpccni.localcloud.imds_history import ViewHistory
    from vpccni.localcloud.model import EniView, InstanceView

_EXPORTS: dict[str, str] = {
    "LocalCloud": "cloud",
    "Node": "cloud",
    "Subnet": "cloud",
    "Vpc": "cloud",
    "is_known_instance_type": "cloud",
    "Ec2Server": "ec2server",
    "Ec2ControlClient": "ec2_control",
    "ActionCounters": "ec2_counters",
    "FaultInjector": "ec2_faults",
    "FaultRule": "ec2_faults",
    "LatencyProfile": "ec2_latency",
    "PROFILE_NAMES": "ec2_latency",
    "InstanceTypeLimits": "ec2_state",
    "limits_for": "ec2_state",
    "BucketSpec": "ec2_throttle",
    "ThrottleConfig": "ec2_throttle",
    "ImdsServer": "imds",
    "ViewHistory": "imds_history",
    "EniView": "model",
    "InstanceView": "model",
}

__all__ = [
    "PROFILE_NAMES",
    "ActionCounters",
    "BucketSpec",
    "Ec2ControlClient",
    "Ec2Server",
    "EniView",
    "FaultInjector",
    "FaultRule",
    "ImdsServer",
    "InstanceTypeLimits",
    "InstanceView",
    "LatencyProfile",
    "LocalCloud",
    "Node",
    "Subnet",
    "ThrottleConfig",
    "ViewHistory",
    "Vpc",
    "is_known_instance_type",
    "limits_for",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
