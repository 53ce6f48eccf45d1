"""ipamd with its Kubernetes side on (MY_NODE_NAME), against the local cloud and the Kubernetes emulator:
custom networking through the node's ENIConfig, a missing ENIConfig, a cordoned node, and a missing IAM
permission, each seen where an operator looks: EC2, the ADD's error, /v1/pool and the node's Events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until
from tests.kube import KubeCluster
from vpccni.localcloud import LocalCloud
from vpccni.wire.protocol import ErrorKind, NoIpReason

__all__ = ["ipamd_cloud", "run_ipamd"]

NODE = "node-k8s"
ENI_CONFIG_LABEL = "k8s.amazonaws.com/eniConfig"


@pytest.fixture
def kube() -> Iterator[KubeCluster]:
    with KubeCluster() as cluster:
        yield cluster


def k8s_settings(kube: KubeCluster, **extra: str) -> dict[str, str]:
    return {"MY_NODE_NAME": NODE, "CLUSTER_ENDPOINT": kube.url, **extra}


def refused_for(ipamd: Ipamd, cid: str, reason: NoIpReason) -> str | None:
    answer = ipamd.add(cid)
    assert not answer.ok and answer.error is not None and answer.error.kind is ErrorKind.NO_IP, answer
    return answer.error.message if answer.error.reason is reason else None


def node_events(kube: KubeCluster, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in kube.events()
        if e.get("reason") == reason and e.get("involvedObject", {}).get("kind") == "Node"
    ]


def test_custom_networking_puts_pods_on_enis_in_the_eniconfig_subnet(
    run_ipamd: Any, ipamd_cloud: LocalCloud, kube: KubeCluster
) -> None:
    vpc, node_subnet, _ = ipamd_cloud.default_network()
    pods_subnet = ipamd_cloud.create_subnet(vpc, "10.0.64.0/20", az=node_subnet.availability_zone)
    pods_sg = ipamd_cloud.create_security_group(vpc, "pods")
    kube.create_eni_config("pods-a", subnet=pods_subnet.subnet_id, security_groups=[pods_sg])
    kube.create_node(NODE, labels={ENI_CONFIG_LABEL: "pods-a"})
    ipamd = run_ipamd("m5.large", k8s_settings(kube, AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG="true"))
    ip = ipamd.add_ok("a")
    assert ip.startswith("10.0.") and 64 <= int(ip.split(".")[2]) < 80, f"{ip} is not in {pods_subnet.cidr}"
    enis = {e.device_index: e for e in ipamd.ec2_enis()}
    assert enis[0].private_ips == (ipamd.node.primary_ip,), "the primary ENI carries no pod addresses"
    assert enis[1].subnet_id == pods_subnet.subnet_id
    assert enis[1].security_group_ids == (pods_sg,)
    assert ip in enis[1].private_ips


def test_a_missing_eniconfig_is_the_reason_and_a_node_event(run_ipamd: Any, kube: KubeCluster) -> None:
    kube.create_node(NODE, labels={ENI_CONFIG_LABEL: "nowhere"})
    ipamd = run_ipamd("m5.large", k8s_settings(kube, AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG="true"))
    message = wait_until(
        "ADD refused for the ENIConfig", lambda: refused_for(ipamd, "a", NoIpReason.ENI_CONFIG_MISSING)
    )
    assert "nowhere" in message
    assert ipamd.pool()["blocked"]["reason"] == "eni_config_missing"
    events = wait_until("a MissingENIConfig event", lambda: node_events(kube, "MissingENIConfig") or None)
    assert events[0]["type"] == "Warning" and "nowhere" in events[0]["message"]
    assert ipamd.running


@pytest.mark.parametrize("manage", [False, True])
def test_a_cordoned_node_grows_only_with_aws_manage_enis_non_schedulable(
    run_ipamd: Any, kube: KubeCluster, manage: bool
) -> None:
    kube.create_node(NODE, unschedulable=True)
    ipamd = run_ipamd("m5.large", k8s_settings(kube, AWS_MANAGE_ENIS_NON_SCHEDULABLE=str(manage).lower()))
    if manage:
        ipamd.add_ok("a")
        return
    message = wait_until(
        "ADD refused while cordoned", lambda: refused_for(ipamd, "a", NoIpReason.UNSCHEDULABLE)
    )
    assert "AWS_MANAGE_ENIS_NON_SCHEDULABLE" in message
    primary = next(e for e in ipamd.ec2_enis() if e.device_index == 0)
    assert primary.private_ips == (ipamd.node.primary_ip,), "not even the start-up pass grew the pool"
    assert ipamd.pool()["ec2_calls"].get("AssignPrivateIpAddresses") is None


def test_a_missing_iam_permission_is_a_missing_iam_permissions_event(
    run_ipamd: Any, ipamd_cloud: LocalCloud, kube: KubeCluster
) -> None:
    kube.create_node(NODE)
    ipamd_cloud.server.faults.inject(
        "AssignPrivateIpAddresses",
        code="UnauthorizedOperation",
        status=403,
        count=10_000,
        message="You are not authorized to perform this operation.",
    )
    ipamd = run_ipamd("m5.large", k8s_settings(kube))
    events = wait_until(
        "a MissingIAMPermissions event", lambda: node_events(kube, "MissingIAMPermissions") or None
    )
    assert events[0]["type"] == "Warning"
    assert "ec2:AssignPrivateIpAddresses" in events[0]["message"]
    assert refused_for(ipamd, "a", NoIpReason.UNAUTHORIZED) is not None
    ipamd_cloud.server.faults.clear()  # the permission granted: the next pool pass grows
    ipamd.add_ok("a", also_wait_for=frozenset({NoIpReason.UNAUTHORIZED}))
