"""Prometheus metrics of ipamd, under aws-node's names (so dashboards and cni-metrics-helper carry over).

aws-node is written in Go; its counters are exposed WITHOUT the ``_total`` suffix that the Python client
appends (``awscni_add_ip_req_count``, not ``awscni_add_ip_req_count_total``). :func:`exposition` renders
the classic text format with aws's exact names, so a query written for aws-node works unchanged.

Our own metrics are prefixed ``vpccni_`` and follow the Prometheus conventions (``_total`` counters).
Everything is registered on a private registry owned by :class:`Metrics`: no global state, one
instance per ipamd (tests create as many as they like).
"""

from __future__ import annotations

import math
import platform

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

import vpccni

# Buckets for start-up/initialisation histograms (seconds): a node is ready in 1-60 s.
_STARTUP_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
# RPC latency buckets (seconds): durable ADD/DEL on the warm path is 1-10 ms.
_RPC_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """Every metric ipamd exports. Attribute names follow the metric names."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        # --- aws-node's names (its prometheusmetrics package), so dashboards and alerts carry over ---
        self.ipamd_error_count = Counter("awscni_ipamd_error_count", "ipamd errors", ["fn"], registry=r)
        self.ipamd_action_inprogress = Gauge(
            "awscni_ipamd_action_inprogress", "ipamd actions in progress", ["fn"], registry=r
        )
        self.eni_max = Gauge("awscni_eni_max", "Maximum ENIs this node can attach", registry=r)
        self.ip_max = Gauge("awscni_ip_max", "Maximum pod addresses this node can hold", registry=r)
        self.reconcile_count = Counter(
            "awscni_reconcile_count", "Reconciliations with EC2/IMDS", ["fn"], registry=r
        )
        self.add_ip_req_count = Counter(
            "awscni_add_ip_req_count", "ADD requests (assign an address)", registry=r
        )
        self.del_ip_req_count = Counter(
            "awscni_del_ip_req_count", "DEL requests (release an address)", ["reason"], registry=r
        )
        self.aws_api_latency_ms = Summary(
            "awscni_aws_api_latency_ms", "AWS API call latency in ms", ["api", "error", "status"], registry=r
        )
        self.aws_api_error_count = Counter(
            "awscni_aws_api_error_count", "AWS API errors", ["api", "error"], registry=r
        )
        self.ec2api_req_count = Counter("awscni_ec2api_req_count", "EC2 API requests", ["fn"], registry=r)
        self.ec2api_error_count = Counter("awscni_ec2api_error_count", "EC2 API errors", ["fn"], registry=r)
        self.eni_allocated = Gauge("awscni_eni_allocated", "ENIs attached and managed", registry=r)
        self.total_ip_addresses = Gauge(
            "awscni_total_ip_addresses", "Pod addresses held by the node", registry=r
        )
        self.assigned_ip_addresses = Gauge(
            "awscni_assigned_ip_addresses", "Addresses assigned to pods", registry=r
        )
        self.total_ipv4_prefixes = Gauge(
            "awscni_total_ipv4_prefixes", "Delegated /28 prefixes held", registry=r
        )
        self.force_removed_enis = Counter("awscni_force_removed_enis", "ENIs removed despite use", registry=r)
        self.force_removed_ips = Counter(
            "awscni_force_removed_ips", "Addresses removed despite use", registry=r
        )
        self.assigned_ip_per_cidr = Gauge(
            "awscni_assigned_ip_per_cidr", "Assigned addresses per CIDR", ["cidr"], registry=r
        )
        self.no_available_ip_addresses = Counter(
            "awscni_no_available_ip_addresses", "ADDs that found no free address", registry=r
        )
        self.ipamd_startup_duration_seconds = Histogram(
            "awscni_ipamd_startup_duration_seconds",
            "Time from process start to serving",
            ["success", "with_api_server", "failure_reason"],
            buckets=_STARTUP_BUCKETS,
            registry=r,
        )
        self.ipamd_node_initialization_duration_seconds = Histogram(
            "awscni_ipamd_node_initialization_duration_seconds",
            "Time from process start to a pool that can serve an ADD",
            ["success"],
            buckets=_STARTUP_BUCKETS,
            registry=r,
        )
        self.build_info = Gauge(
            "awscni_build_info", "Build information", ["version", "goversion"], registry=r
        )
        # goversion kept for dashboards that group by it; ours is the Python version.
        self.build_info.labels(vpccni.__version__, f"python{platform.python_version()}").set(1)
        # --- ours ---
        self.cooldown_ip_addresses = Gauge(
            "vpccni_cooldown_ip_addresses", "Released addresses still in IP_COOLDOWN_PERIOD", registry=r
        )
        self.ec2_throttled_calls = Counter(
            "vpccni_ec2_throttled_calls_total", "EC2 calls answered RequestLimitExceeded", ["api"], registry=r
        )
        self.api_budget_tokens = Gauge(
            "vpccni_api_budget_tokens", "Tokens left in the EC2 API budget", ["action_class"], registry=r
        )
        self.api_budget_refill_per_second = Gauge(
            "vpccni_api_budget_refill_per_second",
            "Current refill rate of the EC2 API budget (AIMD-adjusted)",
            ["action_class"],
            registry=r,
        )
        self.pool_blocked = Gauge(
            "vpccni_pool_blocked", "1 while the pool cannot grow, labelled with why", ["reason"], registry=r
        )
        self.rpc_duration_seconds = Histogram(
            "vpccni_rpc_duration_seconds",
            "Plugin request service time",
            ["op"],
            buckets=_RPC_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        return exposition(self.registry)


def _sample_line(name: str, labels: dict[str, str], value: float) -> str:
    if labels:
        body = ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{body}}} {_number(value)}\n"
    return f"{name} {_number(value)}\n"


def _number(value: float) -> str:
    """A sample value as the Go client writes it (1, 0.25, +Inf, NaN)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def exposition(registry: CollectorRegistry) -> bytes:
    """Classic Prometheus text format, with aws-node's exact counter names (no ``_total``).

    ``_created`` samples are dropped: the Go client that aws-node uses does not expose them.
    """
    out: list[str] = []
    for family in registry.collect():
        name, kind = family.name, family.type
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        if kind == "counter":
            exposed = name if name.startswith("awscni_") else name + "_total"
            samples = [s._replace(name=exposed) for s in samples]
            name = exposed
        elif kind == "unknown":
            kind = "untyped"
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {kind}\n")
        out.extend(_sample_line(s.name, s.labels, s.value) for s in samples)
    return "".join(out).encode()
