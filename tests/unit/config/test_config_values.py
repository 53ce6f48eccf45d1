"""vpccni.config.settings: what each variable accepts, and the one-line refusal of everything else.

Every bad value is an error naming the variable, the value and what is accepted (aws-node would log and
fall back); all bad variables are reported together; cross-field checks name the variable that enables them.
"""

from __future__ import annotations

import ipaddress

import pytest

from vpccni.config.envparse import BOOL_ACCEPTED
from vpccni.config.settings import Settings
from vpccni.errors import ConfigError, ConfigProblem

GO_TRUE = ["1", "t", "T", "TRUE", "true", "True"]
GO_FALSE = ["0", "f", "F", "FALSE", "false", "False"]
BOOL_VARIABLES = {
    "ENABLE_PREFIX_DELEGATION": "enable_prefix_delegation",
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": "manage_enis_non_schedulable",
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": "disable_network_resource_provisioning",
    "DISABLE_LEAKED_ENI_CLEANUP": "disable_leaked_eni_cleanup",
    "MANAGE_UNTAGGED_ENI": "manage_untagged_eni",
    "ENABLE_SUBNET_DISCOVERY": "enable_subnet_discovery",
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "custom_network_cfg",
    "ANNOTATE_POD_IP": "annotate_pod_ip",
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": "external_snat",
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": "node_port_support",
    "ENABLE_BANDWIDTH_PLUGIN": "enable_bandwidth_plugin",
    "DISABLE_INTROSPECTION": "disable_introspection",
    "DISABLE_METRICS": "disable_metrics",
    "VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN": "remove_conflist_on_shutdown",
}


def one_problem(env: dict[str, str]) -> ConfigProblem:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


@pytest.mark.parametrize("variable", BOOL_VARIABLES)
@pytest.mark.parametrize(("raw", "expected"), [(v, True) for v in GO_TRUE] + [(v, False) for v in GO_FALSE])
def test_booleans_accept_exactly_go_parsebool(variable, raw, expected):
    assert getattr(Settings.from_env({variable: raw}), BOOL_VARIABLES[variable]) is expected


@pytest.mark.parametrize("variable", BOOL_VARIABLES)
@pytest.mark.parametrize("raw", ["yes", "no", "on", "tRuE", " true", "2", "enabled"])
def test_booleans_refuse_everything_else_naming_the_accepted_values(variable, raw):
    problem = one_problem({variable: raw})
    assert (problem.variable, problem.value, problem.accepted) == (variable, raw, BOOL_ACCEPTED)
    assert str(problem) == (
        f"{variable}={raw!r}: expected one of 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False"
    )


GOOD = [
    ("WARM_ENI_TARGET", "0", "warm_eni_target", 0),
    ("WARM_IP_TARGET", "+5", "warm_ip_target", 5),
    ("MINIMUM_IP_TARGET", "010", "minimum_ip_target", 10),
    ("WARM_PREFIX_TARGET", "3", "warm_prefix_target", 3),
    ("MAX_ENI", "1", "max_eni", 1),
    ("IP_COOLDOWN_PERIOD", "0", "ip_cooldown_period", 0.0),
    ("IP_COOLDOWN_PERIOD", "1.5", "ip_cooldown_period", 1.5),
    ("AWS_VPC_K8S_CNI_BACKING_STORE", "/tmp/x.json", "backing_store", "/tmp/x.json"),
    ("ENI_CONFIG_LABEL_DEF", "topology.kubernetes.io/zone", "eni_config_label_def",
     "topology.kubernetes.io/zone"),
    ("ENI_CONFIG_ANNOTATION_DEF", "eniConfig", "eni_config_annotation_def", "eniConfig"),
    ("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.1.0.0/16,192.168.0.5/24", "exclude_snat_cidrs",
     (ipaddress.IPv4Network("10.1.0.0/16"), ipaddress.IPv4Network("192.168.0.0/24"))),
    ("AWS_EXTERNAL_SERVICE_CIDRS", " 100.64.0.0/10 ,", "external_service_cidrs",
     (ipaddress.IPv4Network("100.64.0.0/10"),)),
    ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "hashrandom", "randomize_snat", "hashrandom"),
    ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "none", "randomize_snat", "none"),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0x4000", "connmark", 0x4000),
    ("AWS_VPC_K8S_CNI_CONNMARK", "128", "connmark", 128),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0200", "connmark", 128),  # Go base 0: leading 0 = octal
    ("AWS_VPC_K8S_CNI_CONNMARK", "0xffffffff", "connmark", 0xFFFFFFFF),
    ("AWS_VPC_ENI_MTU", "576", "eni_mtu", 576),
    ("POD_MTU", "9001", "pod_mtu", 9001),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "veth", "veth_prefix", "veth"),
    ("ENABLE_IPv4", "TRUE", "enable_ipv4", True),
    ("ENABLE_IPv6", "0", "enable_ipv6", False),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "INFO", "log_level", "info"),
    ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "Warn", "plugin_log_level", "warn"),
    ("AWS_VPC_K8S_CNI_LOG_FILE", "stdout", "log_file", "stdout"),
    ("AWS_VPC_K8S_PLUGIN_LOG_FILE", "stderr", "plugin_log_file", "stderr"),
    ("INTROSPECTION_BIND_ADDRESS", "unix:/run/vpccni/introspect.sock", "introspection_bind_address",
     "unix:/run/vpccni/introspect.sock"),
    ("INTROSPECTION_BIND_ADDRESS", "[::1]:61679", "introspection_bind_address", "[::1]:61679"),
    ("CLUSTER_NAME", "prod-eu.1", "cluster_name", "prod-eu.1"),
    ("ADDITIONAL_ENI_TAGS", '{"team":"net"}', "additional_eni_tags", {"team": "net"}),
    ("AWS_EC2_ENDPOINT", "http://127.0.0.1:5000/", "ec2_endpoint", "http://127.0.0.1:5000"),
    ("HTTP_TIMEOUT", "12.5", "http_timeout", 12.5),
    ("AWS_REGION", "us-gov-west-1", "region", "us-gov-west-1"),
    ("CLUSTER_ENDPOINT", "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "cluster_endpoint",
     "https://ABC.gr7.eu-west-1.eks.amazonaws.com"),
    ("MY_NODE_NAME", "ip-10-0-1-5.ec2.internal", "node_name", "ip-10-0-1-5.ec2.internal"),
    ("MY_POD_NAME", "aws-node-x7k2p", "pod_name", "aws-node-x7k2p"),
    ("MY_POD_UID", "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f", "pod_uid", "6f1c9d2e-0b7a-4c3e-9f1d-2a4b6c8d0e1f"),
    ("HOST_CNI_BIN_PATH", "/opt/cni/bin", "host_cni_bin_path", "/opt/cni/bin"),
    ("HOST_CNI_CONFDIR_PATH", "/etc/cni/net.d", "host_cni_confdir_path", "/etc/cni/net.d"),
    ("VPCCNI_IMDS_ENDPOINT", "http://127.0.0.1:18080", "imds_endpoint", "http://127.0.0.1:18080"),
    ("VPCCNI_SOCKET_PATH", "/tmp/vpccni-test/ipamd.sock", "socket_path", "/tmp/vpccni-test/ipamd.sock"),
    ("VPCCNI_API_MUTATING_BUCKET", "50", "api_mutating_bucket", 50),
    ("VPCCNI_API_MUTATING_REFILL", "5", "api_mutating_refill", 5.0),
    ("VPCCNI_API_DESCRIBE_BUCKET", "1", "api_describe_bucket", 1),
    ("VPCCNI_API_DESCRIBE_REFILL", ".5", "api_describe_refill", 0.5),
    ("VPCCNI_POOL_LOOP_PERIOD", "0.1", "pool_loop_period", 0.1),
    ("VPCCNI_RELEASE_SPACING", "0", "release_spacing", 0.0),
    ("VPCCNI_EC2_RECONCILE_PERIOD", "1", "ec2_reconcile_period", 1.0),
    ("VPCCNI_VPC_CIDR_CHECK_PERIOD", "0.5", "vpc_cidr_check_period", 0.5),
    ("VPCCNI_SUBNET_FULL_BACKOFF", "0", "subnet_full_backoff", 0.0),
    ("VPCCNI_MIN_ENI_AGE", "0", "min_eni_age", 0.0),
    ("VPCCNI_LEAKED_ENI_GC_INTERVAL", "30", "leaked_eni_gc_interval", 30.0),
    ("VPCCNI_LEAKED_ENI_GC_GRACE", "0", "leaked_eni_gc_grace", 0.0),
    ("VPCCNI_METRICS_BIND_ADDRESS", "0.0.0.0:9100", "metrics_bind_address", "0.0.0.0:9100"),
    ("VPCCNI_MAX_PODS", "110", "max_pods", 110),
    ("VPCCNI_LOG_FORMAT", "text", "log_format", "text"),
    ("VPCCNI_CLOUD", "azure", "cloud", "azure"),
    ("VPCCNI_IP_BATCH", "0", "ip_batch", 0),
    ("VPCCNI_SHRINK", "aws", "shrink", "aws"),
    ("VPCCNI_FLEET_BUDGET_SHARE", "0.5", "fleet_budget_share", 0.5),
]


@pytest.mark.parametrize(("variable", "raw", "attribute", "expected"), GOOD)
def test_good_values(variable, raw, attribute, expected):
    s = Settings.from_env({variable: raw})
    assert getattr(s, attribute) == expected
    assert s.env_supplied == {attribute: variable}


# (variable, bad value, a phrase the "accepted" text must contain)
BAD = [
    ("WARM_ENI_TARGET", "-1", "an integer >= 0"),
    ("WARM_IP_TARGET", "abc", "an integer >= 0"),
    ("MINIMUM_IP_TARGET", "1.5", "an integer >= 0"),
    ("WARM_PREFIX_TARGET", " 1", "an integer >= 0"),
    ("MAX_ENI", "0", "an integer >= 1"),
    ("IP_COOLDOWN_PERIOD", "30s", "a number of seconds >= 0"),
    ("AWS_VPC_K8S_CNI_BACKING_STORE", "ipam.json", "an absolute path"),
    ("ENI_CONFIG_LABEL_DEF", "bad key!", "a Kubernetes label key"),
    ("ENI_CONFIG_ANNOTATION_DEF", "/x", "a Kubernetes label key"),
    ("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.0.0.0/8,fd00::/8", "'fd00::/8' is not one"),
    ("AWS_EXTERNAL_SERVICE_CIDRS", "10.0.0.0/33", "IPv4 CIDRs"),
    ("AWS_VPC_K8S_CNI_RANDOMIZESNAT", "PRNG", "one of prng, hashrandom, none"),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0", "from 1 to 0xffffffff"),
    ("AWS_VPC_K8S_CNI_CONNMARK", "0x100000000", "from 1 to 0xffffffff"),
    ("AWS_VPC_K8S_CNI_CONNMARK", "mark", "from 1 to 0xffffffff"),
    ("AWS_VPC_ENI_MTU", "575", "an integer from 576 to 9001"),
    ("POD_MTU", "9002", "an integer from 576 to 9001"),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "veths", "1 to 4 characters"),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "eth", "not eth, lo or vlan"),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "lo", "not eth, lo or vlan"),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "vlan", "not eth, lo or vlan"),
    ("AWS_VPC_K8S_CNI_VETHPREFIX", "e/1", "1 to 4 characters"),
    ("ENABLE_IPv4", "false", "true or unset (vpccni is IPv4-only)"),
    ("ENABLE_IPv6", "true", "false or unset (vpccni is IPv4-only)"),
    ("AWS_VPC_K8S_CNI_LOGLEVEL", "verbose", "one of debug, info, warn, error, fatal"),
    ("AWS_VPC_K8S_PLUGIN_LOG_LEVEL", "trace", "one of debug, info, warn, error, fatal"),
    ("AWS_VPC_K8S_CNI_LOG_FILE", "ipamd.log", "an absolute path or stdout or stderr"),
    ("AWS_VPC_K8S_PLUGIN_LOG_FILE", "stdout", "not stdout: the CNI result is written there"),
    ("INTROSPECTION_BIND_ADDRESS", "61679", "host:port"),
    ("INTROSPECTION_BIND_ADDRESS", "unix:relative.sock", "unix:<absolute path>"),
    ("ADDITIONAL_ENI_TAGS", "team=net", "a JSON object of string keys to string values"),
    ("ADDITIONAL_ENI_TAGS", '{"n": 1}', "a JSON object of string keys to string values"),
    ("ADDITIONAL_ENI_TAGS", '["a"]', "a JSON object of string keys to string values"),
    ("ADDITIONAL_ENI_TAGS", '{"node.k8s.amazonaws.com/x":"1"}', "without 'k8s.amazonaws.com'"),
    ("ADDITIONAL_ENI_TAGS", '{"aws:owner":"me"}', "not starting with 'aws:'"),
    ("ADDITIONAL_ENI_TAGS", '{"' + "k" * 129 + '":"v"}', "tag keys of 1..128"),
    ("AWS_EC2_ENDPOINT", "ec2.local:5000", "an http:// or https:// URL"),
    ("AWS_EC2_ENDPOINT", "http://127.0.0.1:70000", "an http:// or https:// URL"),
    ("HTTP_TIMEOUT", "5", "a number of seconds >= 10"),
    ("AWS_REGION", "US-EAST-1", "an AWS region name"),
    ("AWS_DEFAULT_REGION", "east", "an AWS region name"),
    ("CLUSTER_NAME", "my cluster", "1 to 100 characters [A-Za-z0-9._-]"),
    ("CLUSTER_ENDPOINT", "k8s.local", "an http:// or https:// URL"),
    ("MY_NODE_NAME", "Node_1", "a Kubernetes object name"),
    ("MY_POD_NAME", "-pod", "a Kubernetes object name"),
    ("MY_POD_UID", "6F1C9D2E-0B7A-4C3E-9F1D-2A4B6C8D0E1F", "a Kubernetes object uid"),
    ("HOST_CNI_BIN_PATH", "opt/cni/bin", "an absolute path"),
    ("HOST_CNI_CONFDIR_PATH", "net.d", "an absolute path"),
    ("VPCCNI_IMDS_ENDPOINT", "169.254.169.254", "an http:// or https:// URL"),
    ("VPCCNI_SOCKET_PATH", "/" + "s" * 107, "at most 107 bytes"),
    ("VPCCNI_API_MUTATING_BUCKET", "0", "an integer >= 1"),
    ("VPCCNI_API_MUTATING_REFILL", "0", "a number > 0 (calls per second)"),
    ("VPCCNI_API_DESCRIBE_BUCKET", "many", "an integer >= 1"),
    ("VPCCNI_API_DESCRIBE_REFILL", "-2", "a number > 0 (calls per second)"),
    ("VPCCNI_POOL_LOOP_PERIOD", "0", "a number of seconds > 0"),
    ("VPCCNI_RELEASE_SPACING", "-1", "a number of seconds >= 0"),
    ("VPCCNI_EC2_RECONCILE_PERIOD", "nan", "a number of seconds > 0"),
    ("VPCCNI_VPC_CIDR_CHECK_PERIOD", "0", "a number of seconds > 0"),
    ("VPCCNI_SUBNET_FULL_BACKOFF", "inf", "a number of seconds >= 0"),
    ("VPCCNI_MIN_ENI_AGE", "1m", "a number of seconds >= 0"),
    ("VPCCNI_LEAKED_ENI_GC_INTERVAL", "0", "a number of seconds > 0"),
    ("VPCCNI_LEAKED_ENI_GC_GRACE", "5 min", "a number of seconds >= 0"),
    ("VPCCNI_METRICS_BIND_ADDRESS", "unix:/run/m.sock", "host:port"),
    ("VPCCNI_MAX_PODS", "0", "an integer >= 1"),
    ("VPCCNI_LOG_FORMAT", "logfmt", "one of json, text"),
    ("VPCCNI_DATAPLANE", "ebpf", "one of linux, none"),
    ("VPCCNI_SCALE_DOWN_WINDOW", "-5", "a number of seconds >= 0"),
    ("VPCCNI_CLOUD", "gcp", "one of aws, azure"),
    ("VPCCNI_IP_BATCH", "sixteen", "an integer >= 0"),
    ("VPCCNI_AZURE_ARM_ENDPOINT", "http://management.azure.com", "an https:// URL"),
    ("VPCCNI_AZURE_IDENTITY_CLIENT_ID", "kubelet", "a client id (a UUID"),
    ("VPCCNI_AZURE_CA_BUNDLE", "ca.pem", "an absolute path"),
    ("VPCCNI_SHRINK", "aws-node", "one of vpccni, aws"),
    ("VPCCNI_FLEET_BUDGET", "kube-system/Budget", "a Kubernetes object as name or namespace/name"),
    ("VPCCNI_FLEET_BUDGET_SHARE", "0", "a number more than 0 and at most 1"),
    # aws-node features vpccni does not implement: refused when on, never silently ignored.
    ("ENABLE_POD_ENI", "true", "vpccni does not implement Security Groups for Pods"),
    ("ENABLE_MULTI_NIC", "1", "vpccni manages network card 0 only"),
    ("ENABLE_IMDS_ONLY_MODE", "True", "vpccni needs EC2 as the truth for removals"),
    ("ENABLE_V6_EGRESS", "t", "vpccni is IPv4-only"),
]


@pytest.mark.parametrize(("variable", "raw", "phrase"), BAD)
def test_bad_values_name_variable_value_and_what_is_accepted(variable, raw, phrase):
    problem = one_problem({variable: raw})
    assert (problem.variable, problem.value) == (variable, raw)
    assert phrase in problem.accepted
    assert str(problem) == f"{variable}={raw!r}: expected {problem.accepted}"
    assert "\n" not in str(problem)


def test_bad_values_cover_every_variable():
    from vpccni.config.settings import variables

    assert {variable for variable, _, _ in BAD} >= set(variables()) - set(BOOL_VARIABLES)


def test_every_bad_variable_is_reported_at_once():
    # One bad value per variable that has one, all at the same time.
    env: dict[str, str] = {}
    for variable, raw, _ in BAD:
        env.setdefault(variable, raw)
    env.update(dict.fromkeys(BOOL_VARIABLES, "maybe"))
    del env["AWS_DEFAULT_REGION"]  # shadowed by AWS_REGION, so never read: tested on its own above
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    reported = [problem.variable for problem in caught.value.problems]
    assert sorted(reported) == sorted(env)
    assert str(caught.value).count("\n") == len(env) - 1


def test_unsupported_features_are_fine_when_off():
    env = {"ENABLE_POD_ENI": "false", "ENABLE_MULTI_NIC": "0", "ENABLE_IMDS_ONLY_MODE": "F",
           "ENABLE_V6_EGRESS": ""}
    assert Settings.from_env(env) == Settings()


@pytest.mark.parametrize(
    "env",
    [
        {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0"},
        {"ENABLE_PREFIX_DELEGATION": "1", "WARM_PREFIX_TARGET": "0", "WARM_IP_TARGET": "0",
         "MINIMUM_IP_TARGET": "0"},
    ],
)
def test_prefix_delegation_without_any_warm_target_is_refused(env):
    problem = one_problem(env)
    assert problem.variable == "ENABLE_PREFIX_DELEGATION"
    assert problem.value == env["ENABLE_PREFIX_DELEGATION"]
    assert "WARM_PREFIX_TARGET, WARM_IP_TARGET, MINIMUM_IP_TARGET > 0" in problem.accepted


@pytest.mark.parametrize(
    "env",
    [
        {"ENABLE_PREFIX_DELEGATION": "true"},  # WARM_PREFIX_TARGET defaults to 1
        {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0", "WARM_IP_TARGET": "5"},
        {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0", "MINIMUM_IP_TARGET": "10"},
        {"ENABLE_PREFIX_DELEGATION": "false", "WARM_PREFIX_TARGET": "0"},
    ],
)
def test_prefix_delegation_with_a_warm_target_is_accepted(env):
    Settings.from_env(env)


def test_a_bad_warm_target_is_reported_once_not_again_by_the_cross_check():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "-1"})
    assert [p.variable for p in caught.value.problems] == ["WARM_PREFIX_TARGET"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"VPCCNI_METRICS_BIND_ADDRESS": "127.0.0.1:61679"}, "VPCCNI_METRICS_BIND_ADDRESS"),
        ({"VPCCNI_METRICS_BIND_ADDRESS": ":61679"}, "VPCCNI_METRICS_BIND_ADDRESS"),
        ({"INTROSPECTION_BIND_ADDRESS": "0.0.0.0:61678"}, "INTROSPECTION_BIND_ADDRESS"),
    ],
)
def test_introspection_and_metrics_on_one_port_is_refused(env, variable):
    problem = one_problem(env)
    assert problem.variable == variable and problem.value == env[variable]
    assert "a port not used by" in problem.accepted


@pytest.mark.parametrize(
    "env",
    [
        {"VPCCNI_METRICS_BIND_ADDRESS": "127.0.0.2:61679", "INTROSPECTION_BIND_ADDRESS": "127.0.0.1:61679"},
        {"VPCCNI_METRICS_BIND_ADDRESS": ":61679", "DISABLE_INTROSPECTION": "true"},
        {"INTROSPECTION_BIND_ADDRESS": ":61678", "DISABLE_METRICS": "true"},
        {"INTROSPECTION_BIND_ADDRESS": "unix:/run/i.sock", "VPCCNI_METRICS_BIND_ADDRESS": ":61679"},
    ],
)
def test_servers_that_cannot_clash_are_accepted(env):
    Settings.from_env(env)


def test_cross_checks_run_alongside_per_variable_problems():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WARM_IP_TARGET": "x", "VPCCNI_METRICS_BIND_ADDRESS": ":61679"})
    assert [p.variable for p in caught.value.problems] == ["WARM_IP_TARGET", "VPCCNI_METRICS_BIND_ADDRESS"]


def test_from_env_reads_os_environ_by_default(monkeypatch):
    for name in ("WARM_IP_TARGET", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WARM_IP_TARGET", "4")
    s = Settings.from_env()
    assert s.warm_ip_target == 4 and s.env_supplied["warm_ip_target"] == "WARM_IP_TARGET"
