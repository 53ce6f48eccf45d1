"""Feeding :class:`ipamd.observe.metrics.Metrics`: one adapter for every source, so each source stays unaware
of Prometheus.

:class:`MetricsFeed` is at once

* the cloud :class:`~vpccni.cloud.observe.CallObserver` (EC2 and IMDS attempts, from worker threads):
  ``awscni_aws_api_latency_ms{api,error,status}``, ``awscni_aws_api_error_count{api,error}``,
  ``awscni_ec2api_req_count{fn}``, ``awscni_ec2api_error_count{fn}``, ``vpccni_ec2_throttled_calls_total``,
  plus per-action call counts for ``/v1/pool`` (our own counters: prometheus' are not meant to be read
  back);
* the server's :class:`~ipamd.state.hooks.ServerMetrics` (add/del requests, ADDs that found no address,
  ADD latency, internal errors);
* the reconciler's :class:`~ipamd.reconcile.context.ReconcilerMetrics`.

Gauges that mirror state (ENIs, addresses, prefixes, cooldown, per-CIDR use, budget tokens, why the pool
is blocked) are set by :meth:`MetricsFeed.refresh` when /metrics is scraped: a scrape reads counters the
datastore and budget already keep and calls nothing remote.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ipamd.observe.metrics import Metrics
from ipamd.pool import NodeCapacity, PoolTargets, addresses_per_eni
from ipamd.state.datastore import Datastore
from vpccni.cloud.budget import ActionClass, BucketState
from vpccni.wire.protocol import NoIpReason

IMDS_ACTION = "GetMetadata"
_SERVER_ERROR_CODES = {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable",
                       "ServerInternal"}


def _http_status(error_code: str | None, throttled: bool) -> str:
    """aws-node's ``status`` label is the HTTP status of the answer; the observer gives the error code."""
    if error_code is None:
        return "200"
    if throttled:
        return "503"
    if error_code in _SERVER_ERROR_CODES:
        return "500"
    if error_code.isdigit():  # IMDS reports HTTP statuses as codes
        return error_code
    return "400"


class MetricsFeed:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.on_throttle: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._calls: dict[str, list[int]] = {}  # action -> [calls, errors, throttled]
        self._blocked_label: str | None = None

    # --- CallObserver (worker threads) -----------------------------------------------------------

    def observe(self, action: str, seconds: float, error_code: str | None, throttled: bool) -> None:
        m = self.metrics
        failed = error_code is not None
        m.aws_api_latency_ms.labels(action, str(failed).lower(), _http_status(error_code, throttled)).observe(
            seconds * 1000.0)
        if failed:
            m.aws_api_error_count.labels(action, error_code).inc()
        if action != IMDS_ACTION:
            m.ec2api_req_count.labels(action).inc()
            if failed:
                m.ec2api_error_count.labels(action).inc()
            if throttled:
                m.ec2_throttled_calls.labels(action).inc()
            with self._lock:
                counts = self._calls.setdefault(action, [0, 0, 0])
                counts[0] += 1
                counts[1] += failed
                counts[2] += throttled
        if throttled:
            self.on_throttle()

    def ec2_calls(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {action: {"calls": c[0], "errors": c[1], "throttled": c[2]}
                    for action, c in sorted(self._calls.items())}

    # --- ServerMetrics ---------------------------------------------------------------------------

    def add_request(self, outcome: str) -> None:
        self.metrics.add_ip_req_count.inc()

    def del_request(self, reason: str) -> None:
        self.metrics.del_ip_req_count.labels(reason).inc()

    def no_ip(self, reason: NoIpReason) -> None:
        self.metrics.no_available_ip_addresses.inc()

    def assign_latency(self, seconds: float) -> None:
        self.metrics.rpc_duration_seconds.labels("ADD").observe(seconds)

    def error(self, fn: str) -> None:
        self.metrics.ipamd_error_count.labels(fn).inc()

    # --- ReconcilerMetrics -----------------------------------------------------------------------

    def reconciled(self, fn: str) -> None:
        self.metrics.reconcile_count.labels(fn).inc()

    def force_removed(self, enis: int, addresses: int) -> None:
        self.metrics.force_removed_enis.inc(enis)
        self.metrics.force_removed_ips.inc(addresses)

    def in_progress(self, fn: str, delta: int) -> None:
        self.metrics.ipamd_action_inprogress.labels(fn).inc(delta)

    # --- scrape ----------------------------------------------------------------------------------

    def refresh(self, datastore: Datastore, capacity: NodeCapacity, targets: PoolTargets,
                budget: dict[ActionClass, BucketState], blocked: NoIpReason | None) -> None:
        """Set the state gauges from what the datastore, capacity and budget hold right now."""
        m = self.metrics
        stats = datastore.stats()
        m.eni_allocated.set(len(stats.enis))
        m.total_ip_addresses.set(stats.total)
        m.assigned_ip_addresses.set(stats.assigned)
        m.total_ipv4_prefixes.set(stats.prefixes)
        m.cooldown_ip_addresses.set(stats.cooling)
        m.eni_max.set(capacity.max_enis)
        m.ip_max.set(capacity.max_enis * addresses_per_eni(capacity, targets))
        m.assigned_ip_per_cidr.clear()
        for eni in stats.enis:
            for cidr in eni.cidrs:
                m.assigned_ip_per_cidr.labels(cidr.cidr).set(cidr.assigned)
        for action_class, state in budget.items():
            m.api_budget_tokens.labels(str(action_class)).set(state.tokens)
            m.api_budget_refill_per_second.labels(str(action_class)).set(state.rate)
        label = str(blocked) if blocked is not None else None
        if label != self._blocked_label:
            m.pool_blocked.clear()
            if label is not None:
                m.pool_blocked.labels(label).set(1)
            self._blocked_label = label

    def snapshot(self) -> dict[str, Any]:
        """Counters for /v1/pool."""
        calls = self.ec2_calls()
        return {
            "ec2_calls": calls,
            "ec2_calls_total": sum(c["calls"] for c in calls.values()),
            "ec2_throttled_total": sum(c["throttled"] for c in calls.values()),
        }
