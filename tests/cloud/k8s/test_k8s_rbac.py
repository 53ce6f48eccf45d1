"""ipamd needs no Kubernetes permission the chart does not grant.

Every public method of the agent runs against the emulator through a client that records each request
as RBAC sees it (API group, resource, verb). The recorded set must equal ``PERMISSIONS_USED`` (so the
declaration cannot drift from the code) and fit inside the chart's ClusterRole (with the fleet budget,
also its Role) as Helm renders it, with ANNOTATE_POD_IP on and, without pod access, with it off.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

from ipamd.k8s.client import PERMISSIONS_USED, KubeApi, Permission
from ipamd.k8s.integration import K8sNodeAgent
from ipamd.k8s.ledger import ConfigMapLedger
from tests import REPO
from tests.kube import (
    KubeCluster,
    RecordingApiClient,
    kube_fixture,  # noqa: F401  (the kube fixture)
)
from vpccni.config.settings import Settings
from vpccni.wire.protocol import NoIpReason

CHART = str(REPO / "charts" / "vpccni")
NODE = "n1"


def roles(values: dict[str, Any]) -> list[dict[str, Any]]:
    """The ClusterRole and every Role the chart renders with ``values``."""
    rendered = helm.Chart.load(CHART).render(values, name="vpccni", namespace="kube-system")
    return [doc for path, text in rendered.items() if path.endswith(".yaml")  # not NOTES.txt
            for doc in yaml.safe_load_all(text) if doc and doc.get("kind") in ("ClusterRole", "Role")]


def granted(values: dict[str, Any]) -> set[Permission]:
    return {Permission(group, resource, verb)
            for role in roles(values)
            for rule in role["rules"]
            for group in rule.get("apiGroups", [])
            for resource in rule.get("resources", [])
            for verb in rule.get("verbs", [])}


def exercise_everything(kube: KubeCluster, *, annotate_pod_ip: bool, fleet_budget: bool = False
                        ) -> set[Permission]:
    """Run every public method of the agent, including the rarer paths (event patch, event expired)."""
    kube.create_node(NODE, labels={"k8s.amazonaws.com/eniConfig": "az1"})
    kube.create_eni_config("az1", subnet="subnet-1")
    kube.create_pod("web", "web-0")
    api_client = kube.api_client(recording=True)
    assert isinstance(api_client, RecordingApiClient)
    settings = Settings(node_name=NODE, pod_name="vpccni-abcde", custom_network_cfg=True,
                        annotate_pod_ip=annotate_pod_ip)
    agent = K8sNodeAgent(api_client, settings, event_min_interval=0)
    agent.kube_node()
    agent.eni_config()
    agent.ensure_startup_taint()
    agent.remove_startup_taint()
    agent.missing_iam_permission("AttachNetworkInterface")
    agent.report_no_ip(NoIpReason.ENI_LIMIT, "3 of 3 ENIs attached and full")
    agent.report_no_ip(NoIpReason.ENI_LIMIT, "3 of 3 ENIs attached and full")
    agent.annotate_pod_ip("web", "web-0", "10.0.1.5")
    agent.clear_pod_ip("web", "web-0", "10.0.1.5")
    if fleet_budget:  # the ledger: created, read, compare-and-swapped
        ledger = ConfigMapLedger(KubeApi(api_client), "kube-system", "vpccni-ec2-budget")
        ledger.write("{}", None)
        ledger.write("{}", ledger.read()[1])
    return {Permission(*call.permission) for call in api_client.calls}


def test_declared_permissions_are_what_the_code_sends(kube: KubeCluster) -> None:
    assert exercise_everything(kube, annotate_pod_ip=True, fleet_budget=True) == PERMISSIONS_USED


def test_chart_grants_the_ledger_with_the_fleet_budget(kube: KubeCluster) -> None:
    used = exercise_everything(kube, annotate_pod_ip=False, fleet_budget=True)
    missing = used - granted({"env": {"VPCCNI_FLEET_BUDGET": "vpccni-ec2-budget"}})
    assert not missing, f"ipamd uses permissions the ClusterRole lacks: {sorted(missing)}"
    assert not {p for p in granted({}) if p.resource == "configmaps"}, "no ConfigMap access by default"


def test_chart_grants_everything_used_with_annotate_pod_ip(kube: KubeCluster) -> None:
    used = exercise_everything(kube, annotate_pod_ip=True)
    missing = used - granted({"env": {"ANNOTATE_POD_IP": "true"}})
    assert not missing, f"ipamd uses permissions the ClusterRole lacks: {sorted(missing)}"


def test_chart_grants_everything_used_by_default(kube: KubeCluster) -> None:
    used = exercise_everything(kube, annotate_pod_ip=False)
    assert not {p for p in used if p.resource == "pods"}
    missing = used - granted({})
    assert not missing, f"ipamd uses permissions the ClusterRole lacks: {sorted(missing)}"


@pytest.mark.parametrize(("target", "namespace"), [("vpccni-ec2-budget", "kube-system"),
                                                   ("ops/vpccni-ec2-budget", "ops")])
def test_the_ledger_is_granted_in_its_namespace_by_name(target: str, namespace: str) -> None:
    """No cluster-wide ConfigMap access: a Role in the ledger's namespace, get and patch on that one
    object (create cannot be limited to a name in RBAC)."""
    found = roles({"env": {"VPCCNI_FLEET_BUDGET": target}})
    (cluster,) = [r for r in found if r["kind"] == "ClusterRole"]
    assert not [rule for rule in cluster["rules"] if "configmaps" in rule["resources"]]
    (role,) = [r for r in found if r["kind"] == "Role"]
    assert role["metadata"]["namespace"] == namespace
    by_verbs = {tuple(rule["verbs"]): rule.get("resourceNames") for rule in role["rules"]}
    assert by_verbs == {("get", "patch"): ["vpccni-ec2-budget"], ("create",): None}


@pytest.mark.parametrize("values", [{}, {"env": {"ANNOTATE_POD_IP": "true"}},
                                    {"env": {"VPCCNI_FLEET_BUDGET": "vpccni-ec2-budget"}}])
def test_chart_grants_nothing_ipamd_does_not_use(values: dict[str, Any]) -> None:
    """Least privilege the other way round: every granted permission is one the code sends."""
    assert granted(values) - PERMISSIONS_USED == set()
