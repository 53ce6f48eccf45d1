"""Events from ipamd through the emulated API server: de-duplication, targets, aws-node's
MissingIAMPermissions, "why no IP"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ipamd.k8s.integration import REASON_MISSING_IAM, REASON_POOL_CANNOT_GROW, K8sNodeAgent
from tests.kube import (
    KubeCluster,
    RecordingApiClient,
    kube_fixture,  # noqa: F401  (the kube fixture)
)
from vpccni.config.settings import Settings
from vpccni.wire.protocol import NoIpReason

NODE = "n1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_agent(kube: KubeCluster, *, min_interval: float = 0, clock: FakeClock | None = None,
               **settings: Any) -> tuple[K8sNodeAgent, RecordingApiClient]:
    api_client = kube.api_client(recording=True)
    assert isinstance(api_client, RecordingApiClient)
    agent = K8sNodeAgent(api_client, Settings(node_name=NODE, **settings), pod_namespace="kube-system",
                         event_min_interval=min_interval, clock=clock or FakeClock(),
                         wall_clock=lambda: datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    return agent, api_client


def event_writes(api_client: RecordingApiClient) -> list[str]:
    return [c.verb for c in api_client.calls if c.resource == "events"]


def test_same_event_bumps_one_count(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent, api_client = make_agent(kube)
    for _ in range(3):
        assert agent.report_event("SubnetFull", "subnet-1 has no free address", warning=True)
    (event,) = kube.events()
    assert event["count"] == 3
    assert (event["type"], event["reason"]) == ("Warning", "SubnetFull")
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": NODE}
    assert event["source"] == {"component": "vpccni-ipamd", "host": NODE}
    assert event_writes(api_client) == ["create", "patch", "patch"]


def test_a_different_message_is_a_different_event(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent = make_agent(kube)[0]
    agent.report_event("R", "one", warning=False)
    agent.report_event("R", "two", warning=False)
    agent.report_event("R", "one", warning=False)
    counts = {e["message"]: (e["count"], e["type"]) for e in kube.events()}
    assert counts == {"one": (2, "Normal"), "two": (1, "Normal")}


def test_writes_are_spaced_but_the_count_is_kept(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    clock = FakeClock()
    agent, api_client = make_agent(kube, min_interval=60, clock=clock)
    for _ in range(5):
        agent.report_event("R", "m", warning=True)
    assert event_writes(api_client) == ["create"]
    assert kube.events()[0]["count"] == 1
    clock.now += 60
    agent.report_event("R", "m", warning=True)
    assert event_writes(api_client) == ["create", "patch"]
    assert kube.events()[0]["count"] == 6


def test_events_on_the_node_and_on_ipamds_pod(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent = make_agent(kube, pod_name="vpccni-x7k2p")[0]
    agent.report_event("R", "m", warning=True)
    agent.report_event("R", "m", warning=True)
    (node_event,) = kube.events("default")
    (pod_event,) = kube.events("kube-system")
    assert node_event["involvedObject"]["kind"] == "Node"
    assert pod_event["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "name": "vpccni-x7k2p",
                                           "namespace": "kube-system"}
    assert node_event["count"] == pod_event["count"] == 2


def test_an_expired_event_is_created_again_with_the_count(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent, api_client = make_agent(kube)
    agent.report_event("R", "m", warning=True)
    (event,) = kube.events()
    kube.request("DELETE", f"/api/v1/namespaces/default/events/{event['metadata']['name']}")
    assert agent.report_event("R", "m", warning=True)
    (again,) = kube.events()
    assert again["metadata"]["name"] != event["metadata"]["name"]
    assert again["count"] == 2
    assert event_writes(api_client) == ["create", "patch", "create"]


def test_missing_iam_permission_names_the_action(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent = make_agent(kube, pod_name="vpccni-x7k2p")[0]
    assert agent.missing_iam_permission("AssignPrivateIpAddresses")
    assert agent.missing_iam_permission("ec2:AssignPrivateIpAddresses")  # same Event: the name is normalised
    events = kube.events()
    assert len(events) == 2  # one on the node, one on the pod (where aws-node puts it)
    for event in events:
        assert (event["type"], event["reason"]) == ("Warning", REASON_MISSING_IAM)
        assert "failed to call ec2:AssignPrivateIpAddresses due to missing permissions" in event["message"]
        assert event["count"] == 2


def test_why_no_ip_event_carries_the_reason(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent = make_agent(kube)[0]
    assert agent.report_no_ip(NoIpReason.SUBNET_FULL, "subnet-1 has 0 free addresses")
    (event,) = kube.events()
    assert (event["type"], event["reason"]) == ("Warning", REASON_POOL_CANNOT_GROW)
    assert "subnet_full" in event["message"] and "subnet-1 has 0 free addresses" in event["message"]


def test_long_messages_are_truncated(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    make_agent(kube)[0].report_event("R", "x" * 5000, warning=True)
    assert len(kube.events()[0]["message"]) == 1024


def test_event_timestamps_are_the_wall_clock(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    make_agent(kube)[0].report_event("R", "m", warning=True)
    event = kube.events()[0]
    for field in ("firstTimestamp", "lastTimestamp"):
        parsed = datetime.fromisoformat(event[field].replace("Z", "+00:00"))
        assert parsed == datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
