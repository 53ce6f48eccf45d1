"""ipamd's Node integration through the official client against the emulated API server: node facts,
ENIConfig selection, and the startup taint under concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from ipamd.k8s.integration import REASON_ENI_CONFIG_MISSING, K8sNodeAgent
from ipamd.k8s.model import STARTUP_TAINT
from tests.kube import (
    ApiCall,
    KubeCluster,
    RecordingApiClient,
    kube_fixture,  # noqa: F401  (the kube fixture)
)
from vpccni.config.settings import Settings
from vpccni.errors import EniConfigMissing, KubernetesConflict, RetryableError
from vpccni.wire.protocol import NoIpReason

NODE = "ip-10-0-1-5.us-west-2.compute.internal"
OTHER_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule",
               "timeAdded": "2024-01-01T00:00:00Z"}
STARTUP = {"key": STARTUP_TAINT.key, "effect": STARTUP_TAINT.effect}


def make_agent(kube: KubeCluster, **settings: Any) -> tuple[K8sNodeAgent, RecordingApiClient]:
    api_client = kube.api_client(recording=True)
    assert isinstance(api_client, RecordingApiClient)
    agent = K8sNodeAgent(api_client, Settings(node_name=NODE, **settings), event_min_interval=0)
    return agent, api_client


def taints_of(kube: KubeCluster) -> list[dict[str, Any]]:
    return list(kube.node(NODE).get("spec", {}).get("taints") or [])


# --- node facts ----------------------------------------------------------------------------------


def test_node_facts(kube: KubeCluster) -> None:
    kube.create_node(NODE, labels={"topology.kubernetes.io/zone": "us-west-2a"},
                     annotations={"a": "b"}, taints=[OTHER_TAINT], capacity_pods=29)
    facts = make_agent(kube)[0].kube_node()
    assert facts.name == NODE
    assert facts.labels["topology.kubernetes.io/zone"] == "us-west-2a"
    assert facts.annotations == {"a": "b"}
    assert facts.max_pods == 29
    assert [t.key for t in facts.taints] == ["dedicated"]
    assert not facts.unschedulable


def test_capacity_not_reported_yet(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    assert make_agent(kube)[0].kube_node().max_pods is None


def test_capacity_follows_the_kubelet(kube: KubeCluster) -> None:
    kube.create_node(NODE, capacity_pods=29)
    agent = make_agent(kube)[0]
    kube.request("PATCH", f"/api/v1/nodes/{NODE}/status", {"status": {"capacity": {"pods": "110"}}},
                 content_type="application/merge-patch+json")
    assert agent.kube_node().max_pods == 110


@pytest.mark.parametrize("cordon", [
    {"unschedulable": True},
    {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]},
])
def test_cordoned_node_is_unschedulable(kube: KubeCluster, cordon: dict[str, Any]) -> None:
    kube.create_node(NODE)
    agent = make_agent(kube)[0]
    assert not agent.kube_node().unschedulable
    kube.patch_node(NODE, {"spec": cordon})
    assert agent.kube_node().unschedulable


# --- ENIConfig -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "annotations", "settings", "expected"), [
    ({"k8s.amazonaws.com/eniConfig": "from-label"}, {}, {}, "from-label"),
    ({"k8s.amazonaws.com/eniConfig": "from-label"}, {"k8s.amazonaws.com/eniConfig": "from-annotation"}, {},
     "from-annotation"),
    ({"vpc.amazonaws.com/externalEniConfig": "from-external", "k8s.amazonaws.com/eniConfig": "from-label"},
     {"k8s.amazonaws.com/eniConfig": "from-annotation"}, {}, "from-external"),
    ({}, {}, {}, "default"),
    ({"topology.kubernetes.io/zone": "us-west-2a"}, {},
     {"eni_config_label_def": "topology.kubernetes.io/zone"}, "us-west-2a"),
    ({}, {"example.com/cni": "from-annotation"}, {"eni_config_annotation_def": "example.com/cni"},
     "from-annotation"),
])
def test_eni_config_selected_through_the_api(kube: KubeCluster, labels, annotations, settings,
                                             expected) -> None:
    for index, name in enumerate(("from-label", "from-annotation", "from-external", "default", "us-west-2a")):
        kube.create_eni_config(name, subnet=f"subnet-{index}", security_groups=[f"sg-{name}"])
    kube.create_node(NODE, labels=labels, annotations=annotations)
    spec = make_agent(kube, custom_network_cfg=True, **settings)[0].eni_config()
    assert spec is not None
    assert spec.name == expected
    assert spec.security_groups == (f"sg-{expected}",)
    assert spec.subnet.startswith("subnet-")


def test_eni_config_off_without_custom_networking(kube: KubeCluster) -> None:
    kube.create_node(NODE)
    agent, api_client = make_agent(kube)
    assert agent.eni_config() is None
    assert api_client.calls == []


def test_missing_eni_config_is_a_clear_error_and_a_warning_event(kube: KubeCluster) -> None:
    kube.create_node(NODE, labels={"k8s.amazonaws.com/eniConfig": "az1"})
    agent = make_agent(kube, custom_network_cfg=True)[0]
    with pytest.raises(EniConfigMissing) as caught:
        agent.eni_config()
    assert caught.value.no_ip_reason == NoIpReason.ENI_CONFIG_MISSING
    assert "'az1'" in str(caught.value) and "node label k8s.amazonaws.com/eniConfig" in str(caught.value)
    (event,) = kube.events("default")
    assert (event["type"], event["reason"]) == ("Warning", REASON_ENI_CONFIG_MISSING)
    assert event["involvedObject"]["name"] == NODE
    assert "'az1'" in event["message"] and NoIpReason.ENI_CONFIG_MISSING.value in event["message"]
    # Creating it fixes the node without a restart: the next lookup finds it.
    kube.create_eni_config("az1", subnet="subnet-1")
    spec = agent.eni_config()
    assert spec is not None and spec.subnet == "subnet-1"


def test_eni_config_without_subnet_is_missing(kube: KubeCluster) -> None:
    kube.create_eni_config("default", subnet=None, security_groups=["sg-1"])
    kube.create_node(NODE)
    with pytest.raises(EniConfigMissing, match="no spec.subnet"):
        make_agent(kube, custom_network_cfg=True)[0].eni_config()


# --- startup taint -------------------------------------------------------------------------------


def test_startup_taint_added_once_and_others_kept(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[OTHER_TAINT])
    agent = make_agent(kube)[0]
    assert agent.ensure_startup_taint() is True
    assert agent.ensure_startup_taint() is False
    assert taints_of(kube) == [OTHER_TAINT, STARTUP]
    assert agent.kube_node().has_startup_taint


def test_startup_taint_removed_once_and_others_kept(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[OTHER_TAINT, STARTUP])
    agent, api_client = make_agent(kube)
    assert agent.remove_startup_taint() is True
    assert taints_of(kube) == [OTHER_TAINT]
    writes = len([c for c in api_client.calls if c.verb == "patch" and c.resource == "nodes"])
    assert agent.remove_startup_taint() is False
    assert len([c for c in api_client.calls if c.verb == "patch" and c.resource == "nodes"]) == writes
    # Readiness is reported, once.
    ready = [e for e in kube.events("default") if e["reason"] == "NetworkReady"]
    assert len(ready) == 1 and ready[0]["type"] == "Normal"


def test_removing_the_only_taint_leaves_none(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[STARTUP])
    assert make_agent(kube)[0].remove_startup_taint() is True
    assert taints_of(kube) == []


def test_emulator_refuses_a_stale_resource_version(kube: KubeCluster) -> None:
    """The harness itself: optimistic concurrency is what the retry tests rely on."""
    node = kube.create_node(NODE)
    kube.patch_node(NODE, {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(Exception, match="409"):
        kube.patch_node(NODE, {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]}})


def concurrent_writer(kube: KubeCluster, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
                      times: int) -> Callable[[ApiCall], None]:
    """A hook that lets another client change the taints just before each of our first ``times`` node
    patches — between our read and our write — so our write carries a stale resourceVersion."""
    remaining = [times]

    def before_call(call: ApiCall) -> None:
        if call.resource == "nodes" and call.verb == "patch" and remaining[0] > 0:
            remaining[0] -= 1
            kube.patch_node(NODE, {"spec": {"taints": edit(taints_of(kube))}})
    return before_call


def test_add_retries_after_a_concurrent_writer(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[OTHER_TAINT])
    agent, api_client = make_agent(kube)
    api_client.before_call = concurrent_writer(
        kube, lambda taints: [*taints, {"key": "other-writer", "effect": "NoExecute"}], times=1)
    assert agent.ensure_startup_taint() is True
    assert taints_of(kube) == [OTHER_TAINT, {"key": "other-writer", "effect": "NoExecute"}, STARTUP]
    node_calls = [c.verb for c in api_client.calls if c.resource == "nodes"]
    assert node_calls == ["get", "patch", "get", "patch"]  # the first patch got 409


def test_remove_retries_after_a_concurrent_writer(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[STARTUP, OTHER_TAINT])
    agent, api_client = make_agent(kube)
    counter = iter(range(100))
    api_client.before_call = concurrent_writer(
        kube, lambda taints: [*taints, {"key": f"late{next(counter)}", "effect": "NoSchedule"}], times=2)
    assert agent.remove_startup_taint() is True
    assert taints_of(kube) == [OTHER_TAINT, {"key": "late0", "effect": "NoSchedule"},
                               {"key": "late1", "effect": "NoSchedule"}]
    assert [c.verb for c in api_client.calls if c.resource == "nodes"] == ["get", "patch"] * 3


def test_persistent_conflict_is_retryable_and_clobbers_nothing(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[OTHER_TAINT])
    api_client = kube.api_client(recording=True)
    assert isinstance(api_client, RecordingApiClient)
    agent = K8sNodeAgent(api_client, Settings(node_name=NODE), conflict_attempts=3)
    counter = iter(range(100))
    api_client.before_call = concurrent_writer(
        kube, lambda taints: [*taints, {"key": f"w{next(counter)}", "effect": "NoSchedule"}], times=100)
    with pytest.raises(KubernetesConflict) as caught:
        agent.ensure_startup_taint()
    assert isinstance(caught.value, RetryableError)
    assert "3 attempts" in str(caught.value)
    assert taints_of(kube) == [OTHER_TAINT, *({"key": f"w{i}", "effect": "NoSchedule"} for i in range(3))]


def test_waiting_for_the_taint_to_disappear(kube: KubeCluster) -> None:
    """What the node-bootstrap e2e does: another thread (there, a process) removes the taint."""
    kube.create_node(NODE, taints=[OTHER_TAINT, STARTUP])
    agent = make_agent(kube)[0]
    remover = threading.Thread(target=agent.remove_startup_taint)
    remover.start()
    try:
        node = kube.wait_for_node(NODE, lambda n: STARTUP not in (n["spec"].get("taints") or []))
    finally:
        remover.join()
    assert node["spec"]["taints"] == [OTHER_TAINT]


def test_waiting_gives_up_with_the_last_state(kube: KubeCluster) -> None:
    kube.create_node(NODE, taints=[STARTUP])
    with pytest.raises(TimeoutError, match=STARTUP_TAINT.key):
        kube.wait_for_node(NODE, lambda n: False, timeout=0.2)
