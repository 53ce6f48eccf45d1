"""Small interfaces the server reports through, with defaults good enough to run without the rest.

* :class:`PoolStatus` answers "why is there no free address?" — the reason travels in the ADD/STATUS
  error to the CNI result, so ``kubectl describe pod`` says *subnet full* instead of aws-node's bare
  "failed to assign an IP address to container". The reconciler implements it with what it saw from EC2;
  :class:`DatastorePoolStatus` is the fallback that only knows the datastore.
* :class:`PoolDemand` is told when demand changed (an ADD took an address or found none, a DEL gave one
  back), so the pool loop looks again now instead of at its next period and refills before the next pod;
  the app layer wires it to the loop's wake-up.
* :class:`ServerMetrics` receives request outcomes; the metrics engineer maps it onto prometheus
  (``awscni_add_ip_req_count``, ``awscni_del_ip_req_count{reason}``, ``awscni_no_available_ip_addresses``,
  ``awscni_ipamd_error_count{fn}``); :class:`InMemoryServerMetrics` keeps plain counters.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Protocol

from ipamd.state.datastore import Datastore
from vpccni.wire.protocol import NoIpReason


class PoolStatus(Protocol):
    def why_no_ip(self) -> tuple[NoIpReason, str]:
        """Why the pool has no free address right now: a reason and one human sentence."""
        ...


class DatastorePoolStatus:
    """What the datastore alone can say: no ENI yet (starting), or everything assigned/cooling."""

    def __init__(self, datastore: Datastore) -> None:
        self._datastore = datastore

    def why_no_ip(self) -> tuple[NoIpReason, str]:
        if not self._datastore.enis():
            return NoIpReason.STARTING, "no ENI is known yet: ipamd is still discovering this node's ENIs"
        stats = self._datastore.stats()
        if stats.total == 0:
            return NoIpReason.GROWING, "the ENIs hold no pod address yet; the pool is being filled"
        return NoIpReason.GROWING, (
            f"all {stats.total} addresses are in use: {stats.assigned} assigned, {stats.cooling} cooling "
            f"(IP_COOLDOWN_PERIOD={self._datastore.cooldown_s:g}s); the pool is being topped up")


class PoolDemand(Protocol):
    def poke(self) -> None:
        """Demand changed: the pool should look at itself again soon (cheap; never blocks)."""
        ...


class NoDemandSignal:
    """For a handler without a pool loop (tests, the RPC benchmark's server)."""

    def poke(self) -> None:
        return None


class ServerMetrics(Protocol):
    def add_request(self, outcome: str) -> None:
        """One ADD answered; ``outcome`` is "ok" or the ErrorKind value."""
        ...

    def del_request(self, reason: str) -> None:
        """One DEL answered; ``reason`` is the request's (PodDeleted, SetupNSFailed, GC, ...)."""
        ...

    def no_ip(self, reason: NoIpReason) -> None:
        """An ADD found no free address."""
        ...

    def assign_latency(self, seconds: float) -> None:
        """Time from taking the key's lock to the plumbed, durable answer of a successful ADD."""
        ...

    def error(self, fn: str) -> None:
        """An internal failure in ``fn`` (checkpoint write, teardown, unexpected exception)."""
        ...


class InMemoryServerMetrics:
    """Counters in memory; latencies keep count, sum and the last ``window`` samples."""

    def __init__(self, window: int = 4096) -> None:
        self.add_requests: Counter[str] = Counter()
        self.del_requests: Counter[str] = Counter()
        self.no_ips: Counter[NoIpReason] = Counter()
        self.errors: Counter[str] = Counter()
        self.assign_count = 0
        self.assign_seconds_total = 0.0
        self.recent_assign_seconds: deque[float] = deque(maxlen=window)

    def add_request(self, outcome: str) -> None:
        self.add_requests[outcome] += 1

    def del_request(self, reason: str) -> None:
        self.del_requests[reason] += 1

    def no_ip(self, reason: NoIpReason) -> None:
        self.no_ips[reason] += 1

    def assign_latency(self, seconds: float) -> None:
        self.assign_count += 1
        self.assign_seconds_total += seconds
        self.recent_assign_seconds.append(seconds)

    def error(self, fn: str) -> None:
        self.errors[fn] += 1
