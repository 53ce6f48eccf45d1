"""Latency profiles: how long each EC2 action takes in the local cloud.

``fast`` adds nothing (unit-speed tests). ``realistic`` adds delays of the order real EC2 shows for the
calls ipamd makes (an ENI create or attach takes a few hundred ms, an address assignment ~0.2 s, a
describe ~0.1 s), and suggests how late IMDS should show a change (``imds_lag_s``: after an attach, the
instance's metadata lists the new ENI only ~1-2 s later). Delays are fixed, not jittered, so that a
test can rely on "took at least the configured delay".

The server sleeps *outside* its state lock: a slow call does not stall the others, as on real EC2.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpccni.localcloud.ec2.throttle import is_mutating

PROFILE_NAMES = ("fast", "realistic")

_REALISTIC_DELAYS_S = {
    "AssignPrivateIpAddresses": 0.2,
    "UnassignPrivateIpAddresses": 0.15,
    "CreateNetworkInterface": 0.3,
    "AttachNetworkInterface": 0.3,
    "DetachNetworkInterface": 0.3,
    "DeleteNetworkInterface": 0.2,
    "ModifyNetworkInterfaceAttribute": 0.15,
    "CreateTags": 0.1,
    "DeleteTags": 0.1,
    "RunInstances": 0.5,
    "TerminateInstances": 0.3,
}


@dataclass(frozen=True)
class LatencyProfile:
    """Added delay per EC2 action.

    ``name``: ``"fast"``, ``"realistic"`` or a name of your own.
    ``delays_s``: action -> seconds added to every call of it.
    ``describe_s``: seconds for any Describe*/Get*/List* action not in ``delays_s`` (fast: 0, realistic: 0.1).
    ``mutate_s``: seconds for any other action not in ``delays_s`` (fast: 0, realistic: 0.2).
    ``imds_lag_s``: suggested IMDS lag in seconds for nodes in this cloud (fast: 0, realistic: 1.5).
    """

    name: str = "fast"
    delays_s: Mapping[str, float] = field(default_factory=dict)
    describe_s: float = 0.0
    mutate_s: float = 0.0
    imds_lag_s: float = 0.0

    def __post_init__(self) -> None:
        for action, seconds in self.delays_s.items():
            if seconds < 0:
                raise ValueError(f"delay for {action}: expected seconds >= 0, got {seconds}")
        for name in ("describe_s", "mutate_s", "imds_lag_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected seconds >= 0, got {getattr(self, name)}")

    @classmethod
    def fast(cls) -> LatencyProfile:
        return cls()

    @classmethod
    def realistic(cls) -> LatencyProfile:
        return cls("realistic", dict(_REALISTIC_DELAYS_S), describe_s=0.1, mutate_s=0.2, imds_lag_s=1.5)

    @classmethod
    def named(cls, name: str) -> LatencyProfile:
        """The built-in profile ``name``; ValueError naming the accepted names otherwise."""
        if name == "fast":
            return cls.fast()
        if name == "realistic":
            return cls.realistic()
        raise ValueError(f"unknown latency profile {name!r}: expected one of {', '.join(PROFILE_NAMES)}")

    def delay_for(self, action: str) -> float:
        if action in self.delays_s:
            return self.delays_s[action]
        return self.mutate_s if is_mutating(action) else self.describe_s


class Latency:
    """The server's current latency settings: a profile plus per-action overrides. Thread-safe."""

    def __init__(self, profile: str | LatencyProfile = "fast") -> None:
        self._lock = threading.Lock()
        self._profile = LatencyProfile.named(profile) if isinstance(profile, str) else profile
        self._overrides: dict[str, float] = {}

    @property
    def profile(self) -> LatencyProfile:
        return self._profile

    @property
    def imds_lag_s(self) -> float:
        """Suggested IMDS lag for this cloud's profile (seconds)."""
        return self._profile.imds_lag_s

    def use(self, profile: str | LatencyProfile) -> None:
        """Switch profile; per-action overrides are dropped."""
        with self._lock:
            self._profile = LatencyProfile.named(profile) if isinstance(profile, str) else profile
            self._overrides.clear()

    def set(self, action: str, seconds: float) -> None:
        """Every call of ``action`` takes at least ``seconds`` more (overrides the profile)."""
        if seconds < 0:
            raise ValueError(f"delay for {action}: expected seconds >= 0, got {seconds}")
        with self._lock:
            self._overrides[action] = seconds

    def delay_for(self, action: str) -> float:
        with self._lock:
            if action in self._overrides:
                return self._overrides[action]
            return self._profile.delay_for(action)

    def to_json(self) -> dict[str, object]:
        with self._lock:
            return {
                "profile": self._profile.name,
                "delays_s": {**self._profile.delays_s, **self._overrides},
                "describe_s": self._profile.describe_s,
                "mutate_s": self._profile.mutate_s,
                "imds_lag_s": self._profile.imds_lag_s,
            }
