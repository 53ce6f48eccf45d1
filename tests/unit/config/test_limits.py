"""vpccni.config.limits: max-pods figures equal aws-node's eni-max-pods.txt and EKS's
max-pods-calculator.sh."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from vpccni.config.limits import (
    InstanceLimits,
    UnknownVcpus,
    known_instance_types,
    lookup,
    max_pods,
    require,
    sources_of,
)
from vpccni.errors import UnknownInstanceType

# aws-node misc/eni-max-pods.txt (ENIs x (IPv4 per ENI - 1) + 2).
ENI_MAX_PODS = {
    "t2.nano": 4, "t2.micro": 4, "t2.medium": 17, "t2.large": 35, "t3.nano": 4, "t3.micro": 4,
    "t3.small": 11, "t3.medium": 17, "t3.large": 35, "t3.xlarge": 58, "t3.2xlarge": 58, "t3a.small": 8,
    "m4.large": 20, "m4.4xlarge": 234, "m4.10xlarge": 234, "m5.large": 29, "m5.xlarge": 58,
    "m5.2xlarge": 58, "m5.4xlarge": 234, "m5.24xlarge": 737, "m5.metal": 737, "c4.large": 29,
    "c5.large": 29, "c5.4xlarge": 234, "c5.18xlarge": 737, "c5n.18xlarge": 737, "r5.large": 29,
    "m6i.large": 29, "c7g.large": 29, "p3dn.24xlarge": 737, "p4d.24xlarge": 737,
}


@pytest.mark.parametrize(("instance_type", "expected"), ENI_MAX_PODS.items())
def test_max_pods_equals_aws_eni_max_pods(instance_type, expected):
    assert max_pods(require(instance_type)) == expected


@pytest.mark.parametrize(
    ("instance_type", "options", "expected"),
    [
        # prefix delegation: ENIs x ((IPv4 per ENI - 1) x 16) + 2
        ("m5.large", {"prefix_delegation": True}, 3 * 9 * 16 + 2),  # 434
        ("m5.large", {"prefix_delegation": True, "cni_version_cap": True}, 110),
        ("m5.24xlarge", {"prefix_delegation": True}, 15 * 49 * 16 + 2),
        ("m5.24xlarge", {"prefix_delegation": True, "cni_version_cap": True}, 250),  # 96 vCPUs
        ("c5.4xlarge", {"prefix_delegation": True, "cni_version_cap": True}, 110),  # 16 vCPUs
        ("t3.small", {"prefix_delegation": True}, 3 * 3 * 16 + 2),
        # bare metal reports no hypervisor but delegates prefixes
        ("m5.metal", {"prefix_delegation": True}, 15 * 49 * 16 + 2),
        # Xen cannot delegate prefixes: aws-node falls back to secondary IPs
        ("m4.4xlarge", {"prefix_delegation": True}, 234),
        ("t2.medium", {"prefix_delegation": True}, 17),
        # custom networking: the primary ENI carries no pods
        ("m5.large", {"custom_networking": True}, 2 * 9 + 2),
        ("m5.large", {"custom_networking": True, "prefix_delegation": True}, 2 * 9 * 16 + 2),
        ("m5.large", {"custom_networking": True, "max_eni": 1}, 2),
        # MAX_ENI caps ENIs, never raises them
        ("m5.large", {"max_eni": 2}, 2 * 9 + 2),
        ("m5.large", {"max_eni": 1}, 11),
        ("m5.large", {"max_eni": 10}, 29),
        ("m5.24xlarge", {"max_eni": 4, "prefix_delegation": True}, 4 * 49 * 16 + 2),
        # the cap only ever lowers the figure
        ("m5.24xlarge", {"cni_version_cap": True}, 250),
        ("m4.10xlarge", {"cni_version_cap": True}, 234),  # 40 vCPUs: ceiling 250
        ("m5.4xlarge", {"cni_version_cap": True}, 110),  # 16 vCPUs: ceiling 110
        ("t3.small", {"cni_version_cap": True}, 11),
    ],
)
def test_max_pods_variants_follow_the_calculator(instance_type, options, expected):
    assert max_pods(require(instance_type), **options) == expected


@pytest.mark.parametrize(("vcpus", "ceiling"), [(30, 110), (31, 250)])
def test_the_cap_switches_above_30_vcpus(vcpus, ceiling):
    big = dataclasses.replace(require("m5.24xlarge"), vcpus=vcpus)
    assert max_pods(big, cni_version_cap=True) == ceiling
    assert max_pods(big) == 737


def test_max_eni_below_one_is_a_caller_bug():
    with pytest.raises(ValueError, match="max_eni must be >= 1"):
        max_pods(require("m5.large"), max_eni=0)


def test_lookup_of_an_unknown_type():
    assert lookup("x9.bogus") is None
    with pytest.raises(UnknownInstanceType) as caught:
        require("x9.bogus")
    assert caught.value.instance_type == "x9.bogus"


def test_prefix_delegation_support():
    assert require("m5.large").supports_prefix_delegation
    assert require("m5.metal").supports_prefix_delegation and require("m5.metal").hypervisor == ""
    assert not require("m4.large").supports_prefix_delegation


def test_multi_card_types_count_the_default_card_only():
    p4d = require("p4d.24xlarge")
    assert (p4d.max_enis, p4d.network_cards, p4d.ipv4_per_eni, p4d.vcpus) == (15, 4, 50, 96)


def test_the_table_holds_every_type_moto_or_aws_node_knows():
    # 1395 in moto 5.2.6, plus 23 that only aws-node's table still lists (g4ad.*, p3.*, u-*tb1.metal ...).
    assert len(known_instance_types()) == 1418


def test_each_fact_names_its_source():
    assert sources_of("x9.bogus") is None
    m5 = sources_of("m5.large")
    assert m5 is not None
    assert m5["max_enis"].startswith("aws-node's limits table, github:aws/amazon-vpc-cni-k8s")
    assert m5["vcpus"].startswith("moto ") and m5["ipv6_per_eni"].startswith("moto ")
    g4ad = sources_of("g4ad.xlarge")
    assert g4ad is not None and g4ad["vcpus"].startswith("DescribeInstanceTypes item in the history of")
    u6 = sources_of("u-6tb1.metal")
    assert u6 is not None and u6["vcpus"].startswith("fog-aws") and u6["ipv6_per_eni"] == "no source: null"
    assert require("u-6tb1.metal").ipv6_per_eni is None


def test_a_type_whose_vcpus_no_source_has_gets_no_guessed_cap():
    cr1 = require("cr1.8xlarge")
    assert cr1.vcpus is None and max_pods(cr1) == 234
    with pytest.raises(UnknownVcpus, match="the vCPUs of cr1.8xlarge"):
        max_pods(cr1, cni_version_cap=True)


def describe_item(**overrides: object) -> dict[str, Any]:
    """A DescribeInstanceTypes item shaped as EC2 returns it (m5.large)."""
    item = {
        "InstanceType": "m5.large", "Hypervisor": "nitro", "BareMetal": False,
        "VCpuInfo": {"DefaultVCpus": 2, "DefaultCores": 1},
        "NetworkInfo": {
            "MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10, "Ipv6AddressesPerInterface": 10,
            "MaximumNetworkCards": 1, "DefaultNetworkCardIndex": 0,
            "NetworkCards": [{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": 3}],
        },
    }
    item.update(overrides)
    return item


def test_from_describe_parses_an_ec2_item_like_the_table():
    assert InstanceLimits.from_describe(describe_item()) == require("m5.large")


def test_from_describe_uses_the_default_cards_limit_not_the_instance_wide_one():
    network = dict(describe_item()["NetworkInfo"], MaximumNetworkInterfaces=8, MaximumNetworkCards=2,
                   DefaultNetworkCardIndex=1,
                   NetworkCards=[{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": 2},
                                 {"NetworkCardIndex": 1, "MaximumNetworkInterfaces": 6}])
    limits = InstanceLimits.from_describe(describe_item(NetworkInfo=network))
    assert (limits.max_enis, limits.network_cards) == (6, 2)


def test_from_describe_without_network_cards_uses_the_instance_wide_limit():
    network = {k: v for k, v in describe_item()["NetworkInfo"].items() if k != "NetworkCards"}
    assert InstanceLimits.from_describe(describe_item(NetworkInfo=network)).max_enis == 3


def test_from_describe_of_bare_metal_without_hypervisor():
    item = describe_item(InstanceType="m5.metal", BareMetal=True)
    del item["Hypervisor"]
    limits = InstanceLimits.from_describe(item)
    assert limits.hypervisor == "" and limits.supports_prefix_delegation


@pytest.mark.parametrize("missing", ["NetworkInfo", "VCpuInfo"])
def test_from_describe_refuses_an_item_without_the_limits(missing):
    item = describe_item()
    del item[missing]
    with pytest.raises(UnknownInstanceType) as caught:
        InstanceLimits.from_describe(item)
    assert caught.value.instance_type == "m5.large"
    assert isinstance(caught.value.__cause__, KeyError)


def test_from_describe_refuses_a_missing_ipv4_limit():
    network = {k: v for k, v in describe_item()["NetworkInfo"].items() if k != "Ipv4AddressesPerInterface"}
    with pytest.raises(UnknownInstanceType):
        InstanceLimits.from_describe(describe_item(NetworkInfo=network))
