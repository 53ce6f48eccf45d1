"""The chart with ``cloud: azure``: lints, validates against Kubernetes, and renders an environment ipamd
accepts on Azure (VPCCNI_CLOUD=azure, the identity settings, none of the EC2-only entries of ``env``); the
AWS rendering is unchanged by the Azure values."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from tests.unit.deploy.test_chart import CHART, KUBE_VERSION, main_env, render
from vpccni.config.settings import Settings
from vpccni.errors import ConfigError

KUBELET_IDENTITY = "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f"
AZURE: dict[str, Any] = {"cloud": "azure", "azure": {"identityClientId": KUBELET_IDENTITY}}
EC2_ONLY = {"WARM_ENI_TARGET", "WARM_PREFIX_TARGET", "ENABLE_PREFIX_DELEGATION", "MAX_ENI",
            "DISABLE_LEAKED_ENI_CLEANUP", "MANAGE_UNTAGGED_ENI", "ENABLE_SUBNET_DISCOVERY",
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "ENI_CONFIG_LABEL_DEF", "ENI_CONFIG_ANNOTATION_DEF",
            "ADDITIONAL_ENI_TAGS", "AWS_EC2_ENDPOINT", "AWS_VPC_ENI_MTU"}


def settings_of(env: dict[str, Any]) -> Settings:
    """What ipamd would make of the rendered environment (downward-API entries left out)."""
    return Settings.from_env({k: v for k, v in env.items() if isinstance(v, str)})


def test_lint_strict_and_kubernetes_validation_pass() -> None:
    result = helm.lint(CHART, AZURE, strict=True)
    assert result["errors"] == [] and [m for m in result["messages"] if m["severity"] > 1] == []
    docs = render(AZURE)
    assert "CustomResourceDefinition" not in docs, "no ENIConfig CRD on Azure"
    for kind, items in docs.items():
        if kind != "NOTES":
            for doc in items:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_azure_renders_the_cloud_and_identity_and_no_ec2_only_setting() -> None:
    env = main_env(AZURE)
    assert env["VPCCNI_CLOUD"] == "azure"
    assert env["VPCCNI_AZURE_IDENTITY_CLIENT_ID"] == KUBELET_IDENTITY
    assert "VPCCNI_AZURE_ARM_ENDPOINT" not in env, "empty = the public cloud's, ipamd's default"
    assert not EC2_ONLY & set(env), EC2_ONLY & set(env)
    s = settings_of(env)
    assert (s.cloud, s.warm_ip_target, s.ip_batch, s.eni_mtu) == ("azure", 8, 16, 1500), "Azure's defaults"
    assert s.azure_identity_client_id == KUBELET_IDENTITY
    notes = render(AZURE)["NOTES"][0]["text"]
    assert "vpccni max-pods --cloud azure --vm-size" in notes and "vpccni-azure-role.json" in notes


def test_init_reads_the_primary_mac_from_azure_imds() -> None:
    (init,) = render(AZURE)["DaemonSet"][0]["spec"]["template"]["spec"]["initContainers"]
    assert {e["name"]: e.get("value") for e in init["env"]}["VPCCNI_CLOUD"] == "azure"
    (aws_init,) = render({})["DaemonSet"][0]["spec"]["template"]["spec"]["initContainers"]
    assert "VPCCNI_CLOUD" not in {e["name"] for e in aws_init["env"]}


def test_extra_env_is_rendered_and_judged_by_ipamd() -> None:
    env = main_env({**AZURE, "azure": {"armEndpoint": "https://management.usgovcloudapi.net"},
                    "extraEnv": {"WARM_IP_TARGET": "4", "VPCCNI_IP_BATCH": "8"}})
    s = settings_of(env)
    assert (s.warm_ip_target, s.ip_batch, s.azure_arm_endpoint) == (4, 8, "https://management.usgovcloudapi.net")
    refused = main_env({**AZURE, "extraEnv": {"ENABLE_PREFIX_DELEGATION": "true"}})
    with pytest.raises(ConfigError, match="ENABLE_PREFIX_DELEGATION='true': expected false or unset"):
        settings_of(refused)


def test_the_aws_rendering_is_unchanged_and_valid() -> None:
    env = main_env({})
    assert "VPCCNI_CLOUD" not in env and env["WARM_ENI_TARGET"] == "1" and env["AWS_VPC_ENI_MTU"] == "9001"
    assert settings_of(env).cloud == "aws"
    assert main_env({"azure": {"identityClientId": KUBELET_IDENTITY}}) == env, "azure needs cloud: azure"


@pytest.mark.parametrize(("values", "field"), [
    ({"cloud": "gcp"}, "cloud"),
    ({"cloud": "azure", "azure": {"identityClientId": "kubelet"}}, "identityClientId"),
    ({"cloud": "azure", "azure": {"armEndpoint": "http://management.azure.com"}}, "armEndpoint"),
])
def test_bad_azure_values_fail_naming_the_field(values: dict[str, Any], field: str) -> None:
    result = helm.lint(CHART, values, strict=True)
    assert any(field in err for err in result["errors"]), result["errors"]
