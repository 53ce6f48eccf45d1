"""ANNOTATE_POD_IP: a real ipamd (local cloud + the Kubernetes emulator) writes ``vpc.amazonaws.com/pod-ips``
after an ADD and blanks it after the DEL, off the request path (ipamd.k8s.annotations)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ipamd.k8s.model import POD_IPS_ANNOTATION
from tests.cloud.ipamd.ipamd_harness import NETNS, ipamd_cloud, run_ipamd, wait_until
from tests.kube import KubeCluster
from vpccni.wire.protocol import Op, PodRef

__all__ = ["ipamd_cloud", "run_ipamd"]

NODE = "node-annotate"


@pytest.fixture
def kube() -> Iterator[KubeCluster]:
    with KubeCluster() as cluster:
        cluster.create_node(NODE)
        yield cluster


def annotation(kube: KubeCluster, name: str) -> str | None:
    value = kube.pod("default", name)["metadata"].get("annotations", {}).get(POD_IPS_ANNOTATION)
    return value if isinstance(value, str) else None


@pytest.mark.parametrize("enabled", [True, False])
def test_pod_ip_annotation_follows_add_and_del(run_ipamd, kube: KubeCluster, enabled: bool) -> None:
    settings = {"MY_NODE_NAME": NODE, "CLUSTER_ENDPOINT": kube.url, "ANNOTATE_POD_IP": str(enabled).lower()}
    ipamd = run_ipamd("m5.large", settings)
    wait_until("the pool to settle", ipamd.pool_settled)  # an ADD before the first pool pass is refused
    kube.create_pod("default", "web", node_name=NODE)
    kube.create_pod("default", "other", node_name=NODE)
    pod = PodRef(namespace="default", name="web")
    answer = ipamd.request(Op.ADD, "c-web", ifname="eth0", netns=NETNS, pod=pod)
    assert answer.ok and answer.allocation is not None, answer
    ip = answer.allocation.ipv4
    other = ipamd.request(Op.ADD, "c-other", ifname="eth0", netns=NETNS, pod=PodRef("default", "other"))
    assert other.ok and other.allocation is not None, other
    other_ip = other.allocation.ipv4
    if not enabled:
        # An absence: the enabled run below writes within milliseconds; a full second is ample.
        time.sleep(1.0)
        assert annotation(kube, "web") is None and annotation(kube, "other") is None
        return
    # Written one after the other by ipamd's annotation task: each is waited for, neither assumed.
    wait_until("the pod's IP annotation", lambda: annotation(kube, "web") == ip, timeout_s=10)
    wait_until("the other pod's IP annotation", lambda: annotation(kube, "other") == other_ip, timeout_s=10)
    assert ipamd.request(Op.DEL, "c-web", ifname="eth0", pod=pod, reason="PodDeleted").ok
    wait_until("the annotation blanked on DEL", lambda: annotation(kube, "web") == "", timeout_s=10)
    assert annotation(kube, "other") == other_ip
