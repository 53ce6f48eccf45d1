"""vpccni.config.settings: every variable has aws-node's name and default; explain() says where each value
came from.

The expected defaults below are written from aws-node's documentation and code (its README's variable list and
ipamd.go's constants), not read back from vpccni.config.settings: if a default drifts from aws-node's, this
table catches it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import subprocess
import sys

import pytest

from vpccni.config.settings import Settings, render, variables
from vpccni.wire.protocol import DEFAULT_SOCKET_PATH

# variable -> its default as written in the environment ("" = unset), per aws-node (or ours, VPCCNI_*).
AWS_DEFAULTS = {
    "WARM_ENI_TARGET": "1",
    "WARM_IP_TARGET": "0",
    "MINIMUM_IP_TARGET": "0",
    "WARM_PREFIX_TARGET": "1",  # aws-node manifest value (code default 0 cannot start with PD on)
    "ENABLE_PREFIX_DELEGATION": "false",
    "MAX_ENI": "",
    "IP_COOLDOWN_PERIOD": "30",
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": "false",
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": "false",
    "DISABLE_LEAKED_ENI_CLEANUP": "false",
    "AWS_VPC_K8S_CNI_BACKING_STORE": "/var/run/vpccni/ipam.json",  # ours: the format differs from aws's
    "MANAGE_UNTAGGED_ENI": "true",
    "ENABLE_SUBNET_DISCOVERY": "true",
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "false",
    "ENI_CONFIG_LABEL_DEF": "k8s.amazonaws.com/eniConfig",
    "ENI_CONFIG_ANNOTATION_DEF": "k8s.amazonaws.com/eniConfig",
    "ANNOTATE_POD_IP": "false",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": "false",
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "",
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": "prng",
    "AWS_VPC_K8S_CNI_CONNMARK": "0x80",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": "true",
    "AWS_EXTERNAL_SERVICE_CIDRS": "",
    "AWS_VPC_ENI_MTU": "9001",
    "POD_MTU": "9001",  # = AWS_VPC_ENI_MTU
    "AWS_VPC_K8S_CNI_VETHPREFIX": "eni",
    "ENABLE_IPv4": "true",
    "ENABLE_IPv6": "false",
    "ENABLE_BANDWIDTH_PLUGIN": "false",
    "AWS_VPC_K8S_CNI_LOGLEVEL": "debug",
    "AWS_VPC_K8S_CNI_LOG_FILE": "/host/var/log/aws-routed-eni/ipamd.log",
    "AWS_VPC_K8S_PLUGIN_LOG_FILE": "/var/log/aws-routed-eni/plugin.log",
    "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "debug",
    "DISABLE_INTROSPECTION": "false",
    "DISABLE_METRICS": "false",
    "INTROSPECTION_BIND_ADDRESS": "127.0.0.1:61679",
    "CLUSTER_NAME": "",
    "ADDITIONAL_ENI_TAGS": "{}",
    "AWS_EC2_ENDPOINT": "",
    "HTTP_TIMEOUT": "10",
    "AWS_REGION": "",
    "CLUSTER_ENDPOINT": "",
    "MY_NODE_NAME": "",
    "MY_POD_NAME": "",
    "MY_POD_UID": "",
    "HOST_CNI_BIN_PATH": "/host/opt/cni/bin",
    "HOST_CNI_CONFDIR_PATH": "/host/etc/cni/net.d",
    # ours: the cloud
    "VPCCNI_CLOUD": "aws",
    "VPCCNI_IP_BATCH": "0",
    "VPCCNI_AZURE_ARM_ENDPOINT": "https://management.azure.com",
    "VPCCNI_AZURE_IDENTITY_CLIENT_ID": "",
    "VPCCNI_AZURE_CA_BUNDLE": "",
    # ours
    "VPCCNI_IMDS_ENDPOINT": "http://169.254.169.254",
    "VPCCNI_SOCKET_PATH": DEFAULT_SOCKET_PATH,
    "VPCCNI_API_MUTATING_BUCKET": "5",
    "VPCCNI_API_MUTATING_REFILL": "0.5",
    "VPCCNI_API_DESCRIBE_BUCKET": "10",
    "VPCCNI_API_DESCRIBE_REFILL": "2",
    "VPCCNI_POOL_LOOP_PERIOD": "5",
    "VPCCNI_RELEASE_SPACING": "30",
    "VPCCNI_EC2_RECONCILE_PERIOD": "60",
    "VPCCNI_VPC_CIDR_CHECK_PERIOD": "30",
    "VPCCNI_SUBNET_FULL_BACKOFF": "120",
    "VPCCNI_MIN_ENI_AGE": "60",
    "VPCCNI_LEAKED_ENI_GC_INTERVAL": "3600",
    "VPCCNI_LEAKED_ENI_GC_GRACE": "300",
    "VPCCNI_METRICS_BIND_ADDRESS": ":61678",
    "VPCCNI_MAX_PODS": "",
    "VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN": "false",
    "VPCCNI_LOG_FORMAT": "json",
    "VPCCNI_DATAPLANE": "linux",
    "VPCCNI_SCALE_DOWN_WINDOW": "600",
    "VPCCNI_SHRINK": "vpccni",
    "VPCCNI_FLEET_BUDGET": "",
    "VPCCNI_FLEET_BUDGET_SHARE": "0.9",
}


def test_every_setting_has_a_default_in_the_spec_table():
    rows = Settings.from_env({}).explain()
    assert [r.variable for r in rows] == list(AWS_DEFAULTS)
    assert {r.variable: r.value for r in rows} == AWS_DEFAULTS
    assert {r.source for r in rows} == {"default"}


def test_variables_lists_every_name_once_including_the_region_alias():
    names = variables()
    assert len(names) == len(set(names))
    assert set(names) == set(AWS_DEFAULTS) | {"AWS_DEFAULT_REGION"}


def test_every_row_is_documented_with_its_default():
    for row in Settings.from_env({}).explain():
        assert len(row.doc) > 30, row.variable
        assert "Default" in row.doc, row.variable


def test_typed_defaults():
    s = Settings.from_env({})
    assert (s.warm_eni_target, s.warm_ip_target, s.minimum_ip_target, s.warm_prefix_target) == (1, 0, 0, 1)
    assert s.max_eni is None and s.max_pods is None and s.region is None and s.cluster_name is None
    assert s.ip_cooldown_period == 30.0 and s.http_timeout == 10.0 and s.pool_loop_period == 5.0
    assert s.connmark == 0x80 and s.eni_mtu == 9001 and s.pod_mtu is None and s.effective_pod_mtu == 9001
    assert s.exclude_snat_cidrs == () and dict(s.additional_eni_tags) == {}
    assert s == Settings()  # from_env({}) is exactly the dataclass defaults
    assert s.env_supplied == {}


def test_empty_string_means_unset():
    env = dict.fromkeys(variables(), "")
    assert Settings.from_env(env) == Settings()
    assert {r.source for r in Settings.from_env(env).explain()} == {"default"}


def test_explain_sources_name_env_only_for_what_the_environment_set():
    s = Settings.from_env({"WARM_IP_TARGET": "3", "AWS_VPC_ENI_MTU": "1500", "UNRELATED": "x"})
    rows = {r.variable: r for r in s.explain()}
    assert (rows["WARM_IP_TARGET"].value, rows["WARM_IP_TARGET"].source) == ("3", "env")
    assert (rows["AWS_VPC_ENI_MTU"].value, rows["AWS_VPC_ENI_MTU"].source) == ("1500", "env")
    # POD_MTU follows AWS_VPC_ENI_MTU but was not itself set.
    assert (rows["POD_MTU"].value, rows["POD_MTU"].source) == ("1500", "default")
    assert sum(r.source == "env" for r in rows.values()) == 2
    assert dict(s.env_supplied) == {"warm_ip_target": "WARM_IP_TARGET", "eni_mtu": "AWS_VPC_ENI_MTU"}


@pytest.mark.parametrize(
    ("env", "expected_variable", "expected_region"),
    [
        ({"AWS_REGION": "us-west-2"}, "AWS_REGION", "us-west-2"),
        ({"AWS_DEFAULT_REGION": "eu-west-1"}, "AWS_DEFAULT_REGION", "eu-west-1"),
        ({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}, "AWS_REGION", "us-west-2"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1"}, "AWS_DEFAULT_REGION", "eu-west-1"),
        # AWS_DEFAULT_REGION is not read when AWS_REGION is set, so its value does not matter.
        ({"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "not a region"}, "AWS_REGION", "us-west-2"),
    ],
)
def test_region_comes_from_aws_region_then_aws_default_region(env, expected_variable, expected_region):
    s = Settings.from_env(env)
    assert s.region == expected_region
    row = next(r for r in s.explain() if r.variable == expected_variable)
    assert (row.value, row.source) == (expected_region, "env")


def test_explain_values_feed_back_to_the_same_settings():
    env = {
        "WARM_IP_TARGET": "7", "ENABLE_PREFIX_DELEGATION": "True", "MAX_ENI": "2",
        "IP_COOLDOWN_PERIOD": "2.5", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "10.9.0.0/16, 192.168.1.0/24",
        "AWS_VPC_K8S_CNI_CONNMARK": "256",
        "ADDITIONAL_ENI_TAGS": '{"team":"net","env":"prod"}', "POD_MTU": "1400", "CLUSTER_NAME": "blue",
        "AWS_DEFAULT_REGION": "ap-southeast-2", "VPCCNI_API_MUTATING_REFILL": "0.25",
    }
    first = Settings.from_env(env)
    echoed = {r.variable: r.value for r in first.explain() if r.source == "env"}
    second = Settings.from_env(echoed)
    assert second == first
    assert [(r.variable, r.value) for r in second.explain()] == [
        (r.variable, r.value) for r in first.explain()
    ]


def test_settings_are_immutable():
    s = Settings.from_env({"ADDITIONAL_ENI_TAGS": '{"a":"b"}'})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.warm_ip_target = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.additional_eni_tags["c"] = "d"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, ""), (True, "true"), (False, "false"), (3, "3"), (30.0, "30"), (2.5, "2.5"),
     ((ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("1.2.3.0/24")), "10.0.0.0/8,1.2.3.0/24"),
     ({"b": "2", "a": "1"}, '{"a":"1","b":"2"}'), ("x", "x")],
)
def test_render_writes_environment_syntax(value, expected):
    assert render(value) == expected


@pytest.mark.parametrize("module", ["vpccni.config.settings", "vpccni.config.limits"])
def test_import_is_standard_library_only(module):
    code = (
        "import sys; before = set(sys.modules); import " + module + "; "
        "print('\\n'.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout.split()
    third_party = [m for m in loaded
                   if m not in sys.stdlib_module_names and m != "vpccni" and not m.startswith("_")]
    assert third_party == []
