"""``vpccni bench fleet --process-checks`` on real ipamd processes: cold start to the first address, and
RSS with 110 pods placed. Figures are printed with their floors; nothing asserts a wall-clock time."""

from __future__ import annotations

from vpccni.benchmarks.fleet_process import RSS_PODS, process_checks


def test_cold_start_and_rss_are_measured_on_real_processes() -> None:
    report = process_checks()
    print("\n" + "\n".join(report["lines"]))
    cold, rss = report["cold_start"], report["rss"]
    assert cold["seconds"] > cold["floor_ec2_latency_s"] > 0, "the first address came after EC2 answered"
    assert rss["pods"] == RSS_PODS and rss["peak_mib"] >= rss["rss_mib"] > rss["floor_interpreter_mib"] > 0
    assert rss["not_measured_here_mib"]["kubernetes_client"] > 0
