"""vpccni.localcloud: an EC2-faithful local cloud (moto + EC2 semantics + throttling + faults + latency,
one IMDSv2 per node), for our tests, ``make demo`` and users' own tests.

Start with :class:`LocalCloud` (the facade); the EC2 layer (:class:`Ec2Server` and its settings types)
and the IMDS server are exported for tests that need them directly.

Names are resolved lazily (PEP 562): importing this package, or a light submodule such as ``model``,
does not import moto or boto3. Only touching ``LocalCloud``/``Ec2Server`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vpccni.lazy import lazy_exports

if TYPE_CHECKING:
    from vpccni.localcloud.cloud import LocalCloud, Node, Subnet, Vpc, is_known_instance_type
    from vpccni.localcloud.ec2.control import Ec2ControlClient
    from vpccni.localcloud.ec2.counters import ActionCounters
    from vpccni.localcloud.ec2.faults import FaultInjector, FaultRule
    from vpccni.localcloud.ec2.latency import PROFILE_NAMES, LatencyProfile
    from vpccni.localcloud.ec2.server import Ec2Server
    from vpccni.localcloud.ec2.state import InstanceTypeLimits, limits_for
    from vpccni.localcloud.ec2.throttle import BucketSpec, ThrottleConfig
    from vpccni.localcloud.imds.history import ViewHistory
    from vpccni.localcloud.imds.server import ImdsServer
    from vpccni.localcloud.model import EniView, InstanceView

_EXPORTS: dict[str, str] = {
    "LocalCloud": "cloud",
    "Node": "cloud",
    "Subnet": "cloud",
    "Vpc": "cloud",
    "is_known_instance_type": "cloud",
    "Ec2Server": "ec2.server",
    "Ec2ControlClient": "ec2.control",
    "ActionCounters": "ec2.counters",
    "FaultInjector": "ec2.faults",
    "FaultRule": "ec2.faults",
    "LatencyProfile": "ec2.latency",
    "PROFILE_NAMES": "ec2.latency",
    "InstanceTypeLimits": "ec2.state",
    "limits_for": "ec2.state",
    "BucketSpec": "ec2.throttle",
    "ThrottleConfig": "ec2.throttle",
    "ImdsServer": "imds.server",
    "ViewHistory": "imds.history",
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


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

