"""Kubernetes Events from ipamd, de-duplicated the way client-go's EventCorrelator does it.

ipamd reports the same trouble over and over (the pool loop sees "subnet full" every tick). A new Event
per report would flood etcd and ``kubectl describe``; instead the first report creates an Event and
later identical ones (same object, type, reason and message) bump its ``count`` and ``lastTimestamp``
with a patch — ``kubectl`` then shows "(x12 over 5m)". Two more things keep a fleet of nodes from
hammering the API server: at most one write per ``min_interval`` for the same Event (reports in between
only raise the count that the next write carries), and a bounded memory of recent Events (LRU).

Like client-go, the memory is in the process: after a restart the next report creates a fresh Event.
That is also why RBAC needs only ``create`` and ``patch`` on events, never ``get``/``list``.

:class:`EventCorrelator` is pure (the monotonic clock is injected); :func:`event_body` builds the
``core/v1`` Event. Node Events go to the ``default`` namespace with ``involvedObject.uid`` = the node
name, as kubelet writes them, because that is what ``kubectl describe node`` searches for.
"""

from __future__ import annotations

import enum
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

COMPONENT = "vpccni-ipamd"
MAX_MESSAGE = 1024  # the events.k8s.io limit; core/v1 does not enforce one, kubectl tables wrap badly
NODE_EVENT_NAMESPACE = "default"


@dataclass(frozen=True)
class EventTarget:
    """The object an Event is about, and the namespace the Event lives in."""

    kind: str
    name: str
    event_namespace: str
    object_namespace: str = ""
    uid: str = ""

    @classmethod
    def node(cls, name: str) -> EventTarget:
        return cls("Node", name, NODE_EVENT_NAMESPACE, uid=name)

    @classmethod
    def pod(cls, namespace: str, name: str, uid: str = "") -> EventTarget:
        return cls("Pod", name, namespace, object_namespace=namespace, uid=uid)

    def involved_object(self) -> dict[str, str]:
        ref = {"apiVersion": "v1", "kind": self.kind, "name": self.name}
        if self.object_namespace:
            ref["namespace"] = self.object_namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref


@dataclass(frozen=True)
class EventKey:
    target: EventTarget
    type: str  # "Normal" | "Warning"
    reason: str
    message: str


class Write(enum.Enum):
    CREATE = "create"
    PATCH = "patch"
    SKIP = "skip"


@dataclass(frozen=True)
class Decision:
    write: Write
    count: int
    #: The Event to patch (PATCH only).
    event_name: str | None = None


@dataclass
class _Seen:
    count: int
    event_name: str | None = None
    last_write: float | None = None


class EventCorrelator:
    """Decides, per report, whether to create an Event, patch its count, or wait. Not thread-safe."""

    def __init__(self, *, min_interval: float = 60.0, capacity: int = 256) -> None:
        self.min_interval = min_interval
        self.capacity = capacity
        self._seen: OrderedDict[EventKey, _Seen] = OrderedDict()

    def observe(self, key: EventKey, now: float) -> Decision:
        """Count one report of ``key`` at monotonic time ``now`` and say what to send."""
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = _Seen(count=0)
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        self._seen.move_to_end(key)
        seen.count += 1
        if seen.event_name is None:
            return Decision(Write.CREATE, seen.count)
        if seen.last_write is not None and now - seen.last_write < self.min_interval:
            return Decision(Write.SKIP, seen.count, seen.event_name)
        return Decision(Write.PATCH, seen.count, seen.event_name)

    def written(self, key: EventKey, event_name: str, now: float) -> None:
        """The create or patch of ``event_name`` for ``key`` succeeded at ``now``."""
        seen = self._seen.get(key)
        if seen is not None:
            seen.event_name = event_name
            seen.last_write = now

    def lost(self, key: EventKey) -> None:
        """The Event is gone on the server (expired by its TTL): the next write creates a new one."""
        seen = self._seen.get(key)
        if seen is not None:
            seen.event_name = None


def new_event_name(target: EventTarget) -> str:
    # client-go names Events "<object>.<unique hex>"; random, so two ipamd lives never collide.
    return f"{target.name}.{secrets.token_hex(8)}"


def event_body(key: EventKey, name: str, count: int, now: datetime, host: str) -> dict[str, Any]:
    """A complete core/v1 Event. ``metadata.namespace`` is always set (the emulator does not fill it)."""
    stamp = rfc3339(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": key.target.event_namespace},
        "involvedObject": key.target.involved_object(),
        "type": key.type,
        "reason": key.reason,
        "message": key.message[:MAX_MESSAGE],
        "count": count,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT, "host": host},
        "reportingComponent": COMPONENT,
        "reportingInstance": host,
    }


def count_patch(count: int, now: datetime) -> dict[str, Any]:
    return {"count": count, "lastTimestamp": rfc3339(now)}


def rfc3339(moment: datetime) -> str:
    """Kubernetes' metav1.Time wire format: UTC, whole seconds, a literal Z (``moment`` must be aware)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
