"""The Helm chart, rendered and linted by Helm itself (helm-python-sdk), validated by kubernetes-validate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests import REPO
from vpccni.cli import init_cmd

CHART = str(REPO / "charts" / "vpccni")
KUBE_VERSION = "1.33"

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "prefix-delegation": {"env": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"}},
    "custom-networking": {
        "env": {
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
            "ENI_CONFIG_LABEL_DEF": "topology.kubernetes.io/zone",
        }
    },
    "external-snat": {"env": {"AWS_VPC_K8S_CNI_EXTERNALSNAT": "true", "ANNOTATE_POD_IP": "true"}},
    "warm-ip-unquoted": {"env": {"WARM_ENI_TARGET": 0, "WARM_IP_TARGET": 5, "MINIMUM_IP_TARGET": 10}},
    "fleet-budget": {"env": {"VPCCNI_FLEET_BUDGET": "ops/vpccni-ec2-budget"}},
}


def render(values: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Rendered manifests by kind (NOTES.txt under the key "NOTES")."""
    out = helm.Chart.load(CHART).render(values, name="vpccni", namespace="kube-system")
    docs: dict[str, list[dict[str, Any]]] = {}
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            docs["NOTES"] = [{"text": text}]
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.setdefault(doc["kind"], []).append(doc)
    return docs


def daemonset(values: dict[str, Any]) -> dict[str, Any]:
    return render(values)["DaemonSet"][0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def main_env(values: dict[str, Any]) -> dict[str, Any]:
    (main,) = daemonset(values)["spec"]["template"]["spec"]["containers"]
    return env_of(main)


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict_passes(name: str) -> None:
    result = helm.lint(CHART, VALUE_SETS[name], strict=True)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


@pytest.mark.parametrize("name", VALUE_SETS)
def test_every_manifest_validates_against_kubernetes(name: str) -> None:
    docs = render(VALUE_SETS[name])
    kinds = {k for k in docs if k != "NOTES"}
    expected = {
        "DaemonSet",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
    }
    assert expected <= kinds
    for kind, items in docs.items():
        if kind == "NOTES":
            continue
        for doc in items:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_daemonset_shape() -> None:
    ds = daemonset({})
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["priorityClassName"] == "system-node-critical"
    assert {"operator": "Exists"} in spec["tolerations"]
    assert ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "10%"
    (init,) = spec["initContainers"]
    assert init["command"][:2] == ["vpccni", "init"]
    (main,) = spec["containers"]
    assert main["command"] == ["vpccni-ipamd"]
    assert main["readinessProbe"]["exec"]["command"][:2] == ["vpccni", "status"]
    assert main["livenessProbe"]["exec"]["command"][:2] == ["vpccni", "status"]
    assert main["resources"]["requests"]["cpu"] == "25m"
    host_paths = {v["hostPath"]["path"] for v in spec["volumes"]}
    assert host_paths == {
        "/opt/cni/bin",
        "/etc/cni/net.d",
        "/run/vpccni",
        "/var/log/aws-routed-eni",
        "/proc/sys/net/ipv4",
    }
    env = env_of(main)
    assert env["MY_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert env["MY_POD_UID"] == {"fieldRef": {"fieldPath": "metadata.uid"}}  # Events on ipamd's own pod
    assert env["WARM_ENI_TARGET"] == "1"
    assert env["VPCCNI_SOCKET_PATH"] == "/run/vpccni/ipamd.sock"
    # empty means unset: not rendered at all, so the agent's own default applies
    assert "WARM_IP_TARGET" not in env


def test_unquoted_numbers_and_booleans_become_strings() -> None:
    env = main_env({"env": {"WARM_IP_TARGET": 5, "ENABLE_PREFIX_DELEGATION": True}})
    assert env["WARM_IP_TARGET"] == "5"
    assert env["ENABLE_PREFIX_DELEGATION"] == "true"


def test_pod_patch_permission_only_with_annotate_pod_ip() -> None:
    def pod_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        role = render(values)["ClusterRole"][0]
        return [r for r in role["rules"] if "pods" in r["resources"]]

    assert pod_rules({}) == []
    assert pod_rules({"env": {"ANNOTATE_POD_IP": "true"}})[0]["verbs"] == ["get", "patch"]


def test_rbac_is_read_mostly() -> None:
    role = render({})["ClusterRole"][0]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "patch", "create"}
    assert all("*" not in rule["resources"] for rule in role["rules"])


def test_notes_mention_max_pods_variant() -> None:
    notes = render({"env": {"ENABLE_PREFIX_DELEGATION": "true"}})["NOTES"][0]["text"]
    assert "vpccni max-pods --instance-type <type> --prefix-delegation" in notes
    assert "<no value>" not in notes
    assert "nothing but the kernel and a CNI runtime" in notes


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"env": {"WARM_IP_TARGET": "abc"}}, "/env/WARM_IP_TARGET"),
        ({"env": {"ENABLE_PREFIX_DELEGATION": "yes"}}, "/env/ENABLE_PREFIX_DELEGATION"),
        ({"env": {"AWS_VPC_K8S_CNI_VETHPREFIX": "vlan"}}, "/env/AWS_VPC_K8S_CNI_VETHPREFIX"),
        ({"env": {"AWS_VPC_K8S_CNI_RANDOMIZESNAT": "sometimes"}}, "/env/AWS_VPC_K8S_CNI_RANDOMIZESNAT"),
        ({"env": {"POD_MTU": "100"}}, "/env/POD_MTU"),
        ({"env": {"MAX_ENI": "0"}}, "/env/MAX_ENI"),
        ({"metrics": {"port": 0}}, "/metrics/port"),
        ({"cniBinDir": "relative/path"}, "/cniBinDir"),
        ({"init": {"hostPython": "/usr/bin/python3"}}, "hostPython"),
        ({"replicaCount": 2}, "replicaCount"),
    ],
)
def test_bad_values_fail_naming_the_field(values: dict[str, Any], field: str) -> None:
    result = helm.lint(CHART, values, strict=True)
    assert result["errors"], f"{values} should not lint"
    assert any(field in err for err in result["errors"]), result["errors"]
    with pytest.raises(helm.HelmValuesError, match=field.strip("/")):
        helm.Chart.load(CHART).render(values, name="vpccni", namespace="kube-system")


def test_every_env_value_is_a_setting_ipamd_reads() -> None:
    from vpccni.config.settings import variables

    known = set(variables())
    values = yaml.safe_load(Path(CHART, "values.yaml").read_text())
    assert set(values["env"]) <= known, set(values["env"]) - known
    (main,) = daemonset({})["spec"]["template"]["spec"]["containers"]
    rendered = {e["name"] for e in main["env"]}
    assert rendered <= known, rendered - known


def granted(container: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """What a container is granted: capabilities, privilege, host network, hostPath mounts."""
    context = container.get("securityContext", {})
    volumes = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    return {
        "capabilities": context.get("capabilities", {}),
        "privileged": context.get("privileged", False),
        "allowPrivilegeEscalation": context.get("allowPrivilegeEscalation", True),
        "readOnlyRootFilesystem": context.get("readOnlyRootFilesystem", False),
        "hostNetwork": spec.get("hostNetwork", False),
        "hostPID": spec.get("hostPID", False),
        "host paths": {m["mountPath"]: volumes[m["name"]] for m in container.get("volumeMounts", [])
                       if m["name"] in volumes},
    }


def test_each_container_is_granted_exactly_what_its_steps_need() -> None:
    # The table tests/node/test_least_privilege.py proves row by row, with the built image.
    spec = daemonset({})["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    (main,) = spec["containers"]
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert granted(init, spec) == {
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "hostNetwork": True,
        "hostPID": False,
        "host paths": {"/host/opt/cni/bin": "/opt/cni/bin", "/host/proc/sys/net/ipv4": "/proc/sys/net/ipv4"},
    }
    assert granted(main, spec) == {
        "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN"]},
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "hostNetwork": True,
        "hostPID": False,
        "host paths": {"/host/etc/cni/net.d": "/etc/cni/net.d", "/run/vpccni": "/run/vpccni",
                       "/host/var/log/aws-routed-eni": "/var/log/aws-routed-eni"},
    }


def test_init_installs_the_images_payload_and_writes_the_sysctls_through_the_mount() -> None:
    spec = daemonset({})["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    parser = argparse.ArgumentParser()
    init_cmd.add_arguments(parser)
    args = parser.parse_args(init["command"][2:])  # the chart's command line is one `vpccni init` takes
    assert not args.dev_launcher and args.payload == "/opt/vpccni/payload"
    mounts = {m["mountPath"] for m in init["volumeMounts"]}
    assert f"{args.sysctl_root}/net/ipv4" in mounts
    assert env_of(init)["HOST_CNI_BIN_PATH"] in mounts


@pytest.mark.parametrize(("values", "chain"), [
    ({}, "portmap"),
    ({"init": {"chainPlugins": []}}, "portmap"),
    ({"env": {"ENABLE_BANDWIDTH_PLUGIN": "true"}}, "portmap,bandwidth"),
    ({"extraEnv": {"ENABLE_BANDWIDTH_PLUGIN": True}, "init": {"chainPlugins": ["bandwidth"]}},
     "portmap,bandwidth"),
])
def test_init_installs_every_plugin_the_conflist_chains(values: dict[str, Any], chain: str) -> None:
    (init,) = daemonset(values)["spec"]["template"]["spec"]["initContainers"]
    assert env_of(init)["VPCCNI_CHAIN_PLUGINS"] == chain
