"""VPCCNI_CLOUD=azure: its own defaults (each says so in its doc), its own variables, and the one-line
refusal of settings that cannot apply on Azure; on AWS nothing changes and the Azure variables are refused.
"""

from __future__ import annotations

import pytest

from vpccni.config.settings import Settings
from vpccni.errors import ConfigError, ConfigProblem

AZURE = {"VPCCNI_CLOUD": "azure"}

# variable -> (AWS default, Azure default), as `vpccni config --explain` prints them.
DIFFERENT_DEFAULTS = {
    "WARM_IP_TARGET": ("0", "8"),
    "VPCCNI_IP_BATCH": ("0", "16"),
    "VPCCNI_API_MUTATING_BUCKET": ("5", "10"),
    "VPCCNI_API_MUTATING_REFILL": ("0.5", "0.5"),
    "VPCCNI_API_DESCRIBE_BUCKET": ("10", "12"),
    "VPCCNI_API_DESCRIBE_REFILL": ("2", "1.25"),
    "VPCCNI_EC2_RECONCILE_PERIOD": ("60", "300"),
    "VPCCNI_VPC_CIDR_CHECK_PERIOD": ("30", "300"),
    "AWS_VPC_ENI_MTU": ("9001", "1500"),
    "POD_MTU": ("9001", "1500"),  # follows AWS_VPC_ENI_MTU
}


def problems(env: dict[str, str]) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_azure_defaults_differ_only_where_documented():
    aws = {row.variable: row for row in Settings.from_env({}).explain()}
    azure = {row.variable: row for row in Settings.from_env(AZURE).explain()}
    differ = {v for v in aws if aws[v].value != azure[v].value} - {"VPCCNI_CLOUD"}
    assert differ == {v for v, (a, b) in DIFFERENT_DEFAULTS.items() if a != b}
    for variable, (aws_value, azure_value) in DIFFERENT_DEFAULTS.items():
        assert (aws[variable].value, azure[variable].value) == (aws_value, azure_value), variable
        assert azure[variable].source == "default"
        if variable != "POD_MTU":
            assert f"Azure: {azure_value}" in azure[variable].doc, variable
    assert azure["VPCCNI_CLOUD"].source == "env"


def test_an_explicit_value_beats_the_azure_default():
    s = Settings.from_env({**AZURE, "WARM_IP_TARGET": "3", "VPCCNI_IP_BATCH": "4", "AWS_VPC_ENI_MTU": "4000"})
    assert (s.warm_ip_target, s.ip_batch, s.eni_mtu, s.effective_pod_mtu) == (3, 4, 4000, 4000)
    assert s.api_mutating_bucket == 10, "the unset ones keep the Azure default"


def test_azure_variables_are_read_on_azure():
    s = Settings.from_env({**AZURE, "VPCCNI_AZURE_ARM_ENDPOINT": "https://management.chinacloudapi.cn/",
                           "VPCCNI_AZURE_IDENTITY_CLIENT_ID": "6F1C9D2E-0B7A-4C3E-9F1D-2A4B6C8D0E1F",
                           "VPCCNI_AZURE_CA_BUNDLE": "/etc/ssl/arm-ca.pem"})
    assert s.azure_arm_endpoint == "https://management.chinacloudapi.cn"
    assert s.azure_identity_client_id == "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f"
    assert s.azure_ca_bundle == "/etc/ssl/arm-ca.pem"


# (extra environment on Azure, the variable refused, a phrase of what is accepted)
REFUSED_ON_AZURE = [
    ({"ENABLE_PREFIX_DELEGATION": "true"}, "ENABLE_PREFIX_DELEGATION", "take no delegated prefixes"),
    ({"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "1"}, "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", "running VM"),
    ({"MAX_ENI": "1"}, "MAX_ENI", "every NIC the VM booted with"),
    ({"MANAGE_UNTAGGED_ENI": "false"}, "MANAGE_UNTAGGED_ENI", "does not tag Azure NICs"),
    ({"WARM_IP_TARGET": "0"}, "WARM_IP_TARGET", "WARM_IP_TARGET or MINIMUM_IP_TARGET > 0"),
    ({"WARM_IP_TARGET": "0", "MINIMUM_IP_TARGET": "0"}, "WARM_IP_TARGET", "whole NICs"),
    ({"ADDITIONAL_ENI_TAGS": '{"team":"net"}'}, "ADDITIONAL_ENI_TAGS", "creates no NIC"),
    ({"AWS_EC2_ENDPOINT": "http://127.0.0.1:5000"}, "AWS_EC2_ENDPOINT", "VPCCNI_AZURE_ARM_ENDPOINT"),
    ({"VPCCNI_FLEET_BUDGET": "vpccni-ec2-budget", "MY_NODE_NAME": "n1"}, "VPCCNI_FLEET_BUDGET",
     "EC2 buckets"),
]


@pytest.mark.parametrize(("extra", "variable", "phrase"), REFUSED_ON_AZURE)
def test_settings_that_cannot_apply_on_azure_are_refused_in_one_line(extra, variable, phrase):
    (problem,) = problems({**AZURE, **extra})
    assert (problem.variable, problem.value) == (variable, extra[variable])
    assert phrase in problem.accepted and "VPCCNI_CLOUD=azure" in problem.accepted
    assert "\n" not in str(problem)
    Settings.from_env(extra if variable != "AWS_EC2_ENDPOINT" else {})  # fine on AWS (bar PD's own rule)


def test_azure_accepts_the_ip_targets_it_needs():
    s = Settings.from_env({**AZURE, "WARM_IP_TARGET": "0", "MINIMUM_IP_TARGET": "32"})
    assert (s.warm_ip_target, s.minimum_ip_target, s.ip_batch) == (0, 32, 16)
    Settings.from_env({**AZURE, "WARM_ENI_TARGET": "1", "WARM_PREFIX_TARGET": "1"})  # ignored, as on AWS


@pytest.mark.parametrize("variable", ["VPCCNI_AZURE_ARM_ENDPOINT", "VPCCNI_AZURE_IDENTITY_CLIENT_ID",
                                      "VPCCNI_AZURE_CA_BUNDLE"])
def test_azure_variables_are_refused_on_aws(variable):
    good = {"VPCCNI_AZURE_ARM_ENDPOINT": "https://management.azure.com",
            "VPCCNI_AZURE_IDENTITY_CLIENT_ID": "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f",
            "VPCCNI_AZURE_CA_BUNDLE": "/etc/ssl/ca.pem"}[variable]
    (problem,) = problems({variable: good})
    assert str(problem) == f"{variable}={good!r}: expected unset unless VPCCNI_CLOUD=azure"


@pytest.mark.parametrize(("env", "phrase"), [
    ({"VPCCNI_IP_BATCH": "16"}, "WARM_ENI_TARGET mode grows by whole ENIs"),
    ({"VPCCNI_IP_BATCH": "16", "ENABLE_PREFIX_DELEGATION": "true", "WARM_IP_TARGET": "4"}, "/28 prefixes"),
])
def test_a_batch_that_would_do_nothing_is_refused(env, phrase):
    (problem,) = problems(env)
    assert problem.variable == "VPCCNI_IP_BATCH" and phrase in problem.accepted


def test_a_batch_with_ip_targets_is_fine_on_aws_too():
    s = Settings.from_env({"VPCCNI_IP_BATCH": "8", "WARM_IP_TARGET": "4"})
    assert (s.cloud, s.ip_batch, s.warm_ip_target) == ("aws", 8, 4)


def test_a_bad_cloud_is_reported_and_aws_defaults_apply_to_the_rest():
    (problem,) = problems({"VPCCNI_CLOUD": "Azure"})
    assert str(problem) == "VPCCNI_CLOUD='Azure': expected one of aws, azure"
