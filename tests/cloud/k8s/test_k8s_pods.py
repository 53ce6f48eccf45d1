"""ANNOTATE_POD_IP through the emulated API server: set on ADD, blanked on DEL only if still ours."""

from __future__ import annotations

from typing import Any

from ipamd.k8s.integration import K8sNodeAgent
from ipamd.k8s.model import POD_IPS_ANNOTATION
from tests.kube import (
    ApiCall,
    KubeCluster,
    RecordingApiClient,
    kube_fixture,  # noqa: F401  (the kube fixture)
)
from vpccni.config.settings import Settings

NS, POD = "web", "web-0"


def make_agent(kube: KubeCluster, *, annotate: bool = True) -> tuple[K8sNodeAgent, RecordingApiClient]:
    api_client = kube.api_client(recording=True)
    assert isinstance(api_client, RecordingApiClient)
    return K8sNodeAgent(api_client, Settings(node_name="n1", annotate_pod_ip=annotate)), api_client


def annotation(kube: KubeCluster) -> Any:
    return (kube.pod(NS, POD)["metadata"].get("annotations") or {}).get(POD_IPS_ANNOTATION)


def test_add_sets_and_keeps_other_annotations(kube: KubeCluster) -> None:
    kube.create_pod(NS, POD, annotations={"team": "a"})
    assert make_agent(kube)[0].annotate_pod_ip(NS, POD, "10.0.1.17")
    assert kube.pod(NS, POD)["metadata"]["annotations"] == {"team": "a", POD_IPS_ANNOTATION: "10.0.1.17"}


def test_del_clears_only_the_released_ip(kube: KubeCluster) -> None:
    kube.create_pod(NS, POD)
    agent = make_agent(kube)[0]
    agent.annotate_pod_ip(NS, POD, "10.0.1.17")
    assert agent.clear_pod_ip(NS, POD, "10.0.1.99") is False
    assert annotation(kube) == "10.0.1.17"
    assert agent.clear_pod_ip(NS, POD, "10.0.1.17") is True
    assert annotation(kube) == ""  # aws-node blanks it rather than deleting the key
    assert agent.clear_pod_ip(NS, POD, "10.0.1.17") is False


def test_del_racing_a_newer_add_keeps_the_new_ip(kube: KubeCluster) -> None:
    """Between our read (old IP) and our write, an ADD for the same pod writes a new IP: the 409 makes us
    re-read, see it is no longer ours, and leave it."""
    kube.create_pod(NS, POD, annotations={POD_IPS_ANNOTATION: "10.0.1.17"})
    agent, api_client = make_agent(kube)

    def newer_add(call: ApiCall) -> None:
        if call.resource == "pods" and call.verb == "patch" and annotation(kube) == "10.0.1.17":
            kube.patch_pod(NS, POD, {"metadata": {"annotations": {POD_IPS_ANNOTATION: "10.0.1.42"}}})
    api_client.before_call = newer_add
    assert agent.clear_pod_ip(NS, POD, "10.0.1.17") is False
    assert annotation(kube) == "10.0.1.42"
    assert [c.verb for c in api_client.calls] == ["get", "patch", "get"]


def test_pod_already_gone(kube: KubeCluster) -> None:
    agent = make_agent(kube)[0]
    assert agent.annotate_pod_ip(NS, POD, "10.0.1.17") is False
    assert agent.clear_pod_ip(NS, POD, "10.0.1.17") is False


def test_off_by_default_and_then_never_touches_pods(kube: KubeCluster) -> None:
    kube.create_pod(NS, POD)
    agent, api_client = make_agent(kube, annotate=False)
    assert agent.annotate_pod_ip(NS, POD, "10.0.1.17") is False
    assert agent.clear_pod_ip(NS, POD, "10.0.1.17") is False
    assert api_client.calls == []  # the chart grants no pod access without ANNOTATE_POD_IP
    assert annotation(kube) is None
