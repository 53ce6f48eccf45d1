"""ipamd (a real process) keeps its node's churn journal next to the checkpoint and serves it on
/v1/journal: every ADD and DEL, with the pool's counts, under a header naming the node and its settings."""

from __future__ import annotations

import os

from ipamd.state.journal import parse, token
from tests.cloud.ipamd.ipamd_harness import ipamd_cloud, run_ipamd, wait_until
from vpccni.wire.introspection import http_get

__all__ = ["ipamd_cloud", "run_ipamd"]


def test_the_journal_records_adds_and_dels_and_is_served(run_ipamd) -> None:
    ipamd = run_ipamd("m5.large", {"WARM_IP_TARGET": "2"})
    ipamd.add_ok("pod-a")
    ipamd.add_ok("pod-b")
    assert ipamd.delete("pod-a").ok

    def served():
        status, body = http_get(ipamd.paths.introspection, "/v1/journal")
        journal = parse(body.decode()) if status == 200 else None
        return journal if journal is not None and len(journal.events) >= 3 else None

    journal = wait_until("the journal's flush", served, timeout_s=10)
    assert journal.header["instance_type"] == "m5.large"
    assert journal.header["instance_id"] == ipamd.node.instance_id
    assert journal.header["settings"]["WARM_IP_TARGET"] == "2"
    kinds = [(e.kind, e.pod) for e in journal.events if e.kind != "N"]
    assert kinds == [("A", token("pod-a")), ("A", token("pod-b")), ("D", token("pod-a"))]
    assert all(e.held >= e.assigned for e in journal.events)
    assert [f for f in os.listdir(ipamd.paths.workdir) if f.startswith("ipam.json.churn.")] == [
        "ipam.json.churn.0"]
