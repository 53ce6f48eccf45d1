"""The reconciler's pure rules: subnet discovery, which ENIs are ours, Settings -> pool inputs, why-no-IP
bookkeeping, the leaked-ENI sweep's two-sighting rule, and root-task supervision."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest

from ipamd.app.tasks import FailureWindow, TaskFailed, supervise
from ipamd.reconcile.leaks import LeakedEniSweeper
from ipamd.reconcile.node import NodeFacts, node_capacity, pool_targets, unmanaged_reason
from ipamd.reconcile.reconciler import RefusalBackoff, unauthorized_backoff
from ipamd.reconcile.status import GrowthStatus
from ipamd.reconcile.subnets import discovery_candidates
from ipamd.state.datastore import Datastore
from vpccni.cloud.base import Attachment, NetworkInterface, Subnet, freeze_tags
from vpccni.config import limits
from vpccni.config.settings import Settings
from vpccni.errors import CloudInvalidRequest
from vpccni.wire.protocol import NoIpReason

FACTS = NodeFacts("i-1", "m5.large", "az-a", "r", "vpc-1", "subnet-node", "eni-primary", "10.0.0.5",
                  ("sg-1",))


def subnet(sid: str, free: int, *, az: str = "az-a", vpc: str = "vpc-1") -> Subnet:
    return Subnet(sid, vpc, az, "10.0.0.0/24", free)


def test_subnet_discovery_most_free_first_among_the_eligible():
    role, cluster_tag = "kubernetes.io/role/cni", "cni.networking.k8s.aws/cluster/"
    subnets = [
        subnet("subnet-node", 50),
        replace(subnet("tagged-small", 10), tags=freeze_tags({role: "1"})),
        replace(subnet("tagged-big", 500), tags=freeze_tags({role: "1"})),
        replace(subnet("excluded", 9000), tags=freeze_tags({role: "0"})),
        subnet("untagged", 9000),
        replace(subnet("other-zone", 9000, az="az-b"), tags=freeze_tags({role: "1"})),
        replace(subnet("other-vpc", 9000, vpc="vpc-2"), tags=freeze_tags({role: "1"})),
        replace(subnet("other-cluster", 9000), tags=freeze_tags({role: "1", f"{cluster_tag}b": "1"})),
        replace(subnet("our-cluster", 700), tags=freeze_tags({role: "1", f"{cluster_tag}a": "1"})),
    ]
    chosen = discovery_candidates(subnets, node_subnet_id="subnet-node", vpc_id="vpc-1",
                                  availability_zone="az-a", cluster_name="a")
    assert [s.subnet_id for s in chosen] == ["our-cluster", "tagged-big", "subnet-node", "tagged-small"]
    excluded_node = [replace(subnets[0], tags=freeze_tags({role: "0"}))]
    assert discovery_candidates(excluded_node, node_subnet_id="subnet-node", vpc_id="vpc-1",
                                availability_zone="az-a", cluster_name=None) == []


def eni(eni_id: str, *, tags: Mapping[str, str] | None = None, kind: str = "interface", card: int = 0,
        requester: bool = False) -> NetworkInterface:
    return NetworkInterface(eni_id, "subnet-node", "vpc-1", "az-a", "02:00", "in-use", "10.0.0.9", (), (), (),
                            tags=freeze_tags(tags or {}), interface_type=kind, requester_managed=requester,
                            attachment=Attachment("att", "i-1", 1, "attached", True, card))


def test_which_attached_enis_are_ours():
    settings = Settings()
    assert unmanaged_reason(eni("eni-x"), FACTS, settings) is None, "untagged is managed by default"
    no_manage = eni("eni-x", tags={"node.k8s.amazonaws.com/no_manage": "true"})
    assert "no_manage" in str(unmanaged_reason(no_manage, FACTS, settings))
    assert "trunk" in str(unmanaged_reason(eni("eni-x", kind="trunk"), FACTS, settings))
    assert "card 1" in str(unmanaged_reason(eni("eni-x", card=1), FACTS, settings))
    assert unmanaged_reason(eni("eni-x", requester=True), FACTS, settings) == "requester-managed"
    strict = Settings(manage_untagged_eni=False)
    assert "MANAGE_UNTAGGED_ENI" in str(unmanaged_reason(eni("eni-x"), FACTS, strict))
    tagged = eni("eni-x", tags={"node.k8s.amazonaws.com/instance_id": "i-1"})
    assert unmanaged_reason(tagged, FACTS, strict) is None
    assert unmanaged_reason(eni("eni-primary"), FACTS, strict) is None, "the primary is always ours"


def test_settings_map_to_pool_inputs_as_aws_node_reads_them():
    m5 = limits.require("m5.large")
    cap = node_capacity(Settings(), m5, unmanaged_enis=0)
    assert (cap.max_enis, cap.ips_per_eni, cap.max_pods, cap.primary_serves_pods) == (3, 9, 29, True)
    cap = node_capacity(Settings(max_eni=2), m5, unmanaged_enis=1)
    assert (cap.max_enis, cap.max_pods) == (1, 2 * 9 + 2)
    cap = node_capacity(Settings(custom_network_cfg=True), m5, unmanaged_enis=0)
    assert (cap.max_pods, cap.primary_serves_pods) == (2 * 9 + 2, False)
    assert node_capacity(Settings(max_pods=17), m5, unmanaged_enis=0, node_capacity_pods=50).max_pods == 17
    assert node_capacity(Settings(), m5, unmanaged_enis=0, node_capacity_pods=50).max_pods == 50
    assert pool_targets(Settings(enable_prefix_delegation=True), m5).prefix_delegation
    xen = limits.require("m4.large")
    assert not pool_targets(Settings(enable_prefix_delegation=True), xen).prefix_delegation, "aws falls back"


def test_growth_status_keeps_since_while_the_reason_holds_and_the_last_one_after():
    now = [1000.0]
    status = GrowthStatus(Datastore(), clock=lambda: now[0], monotonic=lambda: now[0])
    assert status.why_no_ip()[0] is NoIpReason.STARTING
    status.started = True
    status.block(NoIpReason.SUBNET_FULL, "full")
    now[0] += 30
    status.block(NoIpReason.SUBNET_FULL, "still full")
    reason, message = status.why_no_ip()
    assert reason is NoIpReason.SUBNET_FULL and "still full" in message and "30s" in message
    assert status.current is not None and status.current.since == 1000.0
    status.clear()
    assert status.current is None and status.last is not None and status.last.cleared_at == 1030.0
    status.note_throttle()
    assert status.why_no_ip()[0] is NoIpReason.THROTTLED


class FakeLeaks:
    def __init__(self, enis: list[NetworkInterface]) -> None:
        self.enis = enis
        self.deleted: list[str] = []
        self.tagged: list[tuple[list[str], dict[str, str]]] = []
        self.refuse: set[str] = set()

    def describe_leaked_interfaces(self, **_: Any) -> list[NetworkInterface]:
        return [e for e in self.enis if e.interface_id not in self.deleted]

    def delete_interface(self, eni_id: str) -> bool:
        if eni_id in self.refuse:
            raise CloudInvalidRequest("DeleteNetworkInterface", "InvalidNetworkInterface.InUse")
        self.deleted.append(eni_id)
        return True

    def create_tags(self, ids: list[str], tags: dict[str, str]) -> None:
        self.tagged.append((ids, tags))


def leaked(eni_id: str, created: str | None) -> NetworkInterface:
    tags = {"node.k8s.amazonaws.com/instance_id": "i-gone"} | ({"node.k8s.amazonaws.com/createdAt": created}
                                                              if created else {})
    return NetworkInterface(eni_id, "s", "vpc-1", "az", "m", "available", "10.0.0.1", (), (), (),
                            description="aws-K8S-i-gone", tags=freeze_tags(tags))


def test_the_sweep_deletes_on_the_second_sighting_after_the_grace():
    cloud = FakeLeaks([leaked("old", "2020-01-01T00:00:00Z"), leaked("young", "2030-01-01T00:00:00Z"),
                       leaked("undated", None), leaked("stuck", "2020-01-01T00:00:00Z")])
    cloud.refuse.add("stuck")
    sweeper = LeakedEniSweeper(cloud, vpc_id="vpc-1", cluster_name=None, grace_s=300)  # type: ignore[arg-type]
    assert asyncio.run(sweeper.sweep()) == [], "first sighting: nothing deleted"
    assert cloud.tagged and cloud.tagged[0][0] == ["undated"]
    assert asyncio.run(sweeper.sweep()) == ["old"]
    assert "stuck" in sweeper.to_json()["pending"], "a refused delete is tried again next sweep"
    cloud.enis = [e for e in cloud.enis if e.interface_id != "stuck"]
    assert asyncio.run(sweeper.sweep()) == [] and sweeper.to_json()["pending"] == []


def test_a_root_task_that_ends_stops_the_others_and_is_reported():
    async def scenario() -> tuple[Any, bool]:
        cancelled = asyncio.Event()

        async def forever() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                cancelled.set()

        async def dies() -> None:
            raise RuntimeError("boom")

        fault = await supervise({"loop": forever(), "bad": dies()}, asyncio.Event())
        return fault, cancelled.is_set()

    fault, cancelled = asyncio.run(scenario())
    assert fault is not None and fault[0] == "bad" and "boom" in fault[1]
    assert cancelled


def test_a_stop_request_is_a_clean_stop():
    async def scenario() -> Any:
        stop = asyncio.Event()
        stop.set()
        return await supervise({"loop": asyncio.sleep(3600)}, stop)

    assert asyncio.run(scenario()) is None


def test_failure_window_tolerates_isolated_failures_not_a_burst():
    now = [0.0]
    window = FailureWindow("pass", limit=3, window_s=60, monotonic=lambda: now[0])
    for _ in range(2):
        window.failed(ValueError("x"))
        now[0] += 100  # far apart: each one alone in its window
    window.failed(ValueError("x"))
    window.failed(ValueError("x"))
    with pytest.raises(TaskFailed):
        window.failed(ValueError("x"))


@pytest.mark.parametrize(("refusals", "seconds"), [(1, 2.0), (2, 4.0), (3, 8.0), (8, 256.0), (9, 300.0),
                                                   (10_000, 300.0)])
def test_unauthorized_backoff_doubles_up_to_five_minutes(refusals, seconds):
    assert unauthorized_backoff(refusals) == seconds


def test_refusal_backoff_grows_with_each_refusal_and_starts_over_after_a_success():
    backoff = RefusalBackoff()
    assert [backoff.refused(100.0) for _ in range(3)] == [102.0, 104.0, 108.0]
    assert backoff.until == 108.0
    backoff.succeeded()
    assert backoff.refused(200.0) == 202.0
