"""ipamd's metrics keep aws-node's exact names, so existing dashboards and alerts work unchanged."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ipamd.observe.metrics import Metrics

# aws-node's metric names (its prometheusmetrics package) that dashboards and alerts use.
AWS_NAMES = {
    "awscni_eni_allocated": "gauge",
    "awscni_eni_max": "gauge",
    "awscni_ip_max": "gauge",
    "awscni_total_ip_addresses": "gauge",
    "awscni_assigned_ip_addresses": "gauge",
    "awscni_total_ipv4_prefixes": "gauge",
    "awscni_add_ip_req_count": "counter",
    "awscni_del_ip_req_count": "counter",
    "awscni_aws_api_latency_ms": "summary",
    "awscni_aws_api_error_count": "counter",
    "awscni_ec2api_req_count": "counter",
    "awscni_no_available_ip_addresses": "counter",
    "awscni_ipamd_error_count": "counter",
    "awscni_reconcile_count": "counter",
    "awscni_force_removed_enis": "counter",
    "awscni_force_removed_ips": "counter",
    "awscni_build_info": "gauge",
}


def exposed(m: Metrics) -> str:
    return m.exposition().decode()


def test_aws_names_and_types_are_exposed_exactly() -> None:
    text = exposed(Metrics())
    for name, kind in AWS_NAMES.items():
        assert f"# TYPE {name} {kind}\n" in text, name
        assert f"# TYPE {name}_total" not in text


def test_aws_counters_have_no_total_suffix_but_ours_do() -> None:
    m = Metrics()
    m.add_ip_req_count.inc(3)
    m.del_ip_req_count.labels("PodDeleted").inc()
    m.ec2_throttled_calls.labels("AssignPrivateIpAddresses").inc(2)
    text = exposed(m)
    assert "\nawscni_add_ip_req_count 3\n" in text
    assert '\nawscni_del_ip_req_count{reason="PodDeleted"} 1\n' in text
    assert '\nvpccni_ec2_throttled_calls_total{api="AssignPrivateIpAddresses"} 2\n' in text
    assert "_created" not in text


def test_exposition_parses_as_prometheus_text() -> None:
    m = Metrics()
    m.aws_api_latency_ms.labels("CreateNetworkInterface", "false", "200").observe(301.5)
    m.rpc_duration_seconds.labels("ADD").observe(0.002)
    m.assigned_ip_per_cidr.labels("10.0.1.16/28").set(4)
    families = {f.name: f for f in text_string_to_metric_families(exposed(m))}
    latency = families["awscni_aws_api_latency_ms"]
    sums = [s.value for s in latency.samples if s.name.endswith("_sum")]
    assert sums == [301.5]
    buckets = [s for s in families["vpccni_rpc_duration_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == 1
    assert families["awscni_build_info"].samples[0].labels["version"]


def test_instances_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.add_ip_req_count.inc()
    assert "\nawscni_add_ip_req_count 1\n" in exposed(a)
    assert "\nawscni_add_ip_req_count 0\n" in exposed(b)
