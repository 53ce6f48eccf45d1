"""``vpccni max-pods`` gives aws's own figures for EVERY type aws publishes one for.

The figures are aws's data as published (scripts/limits_sources/, each file naming its repository, path
and commit): aws-node's misc/eni-max-pods.txt, the EKS AMI's last eni-max-pods.txt, and the instance data
nodeadm computes max pods from today. Each test compares every type both know and, on failure, names
every type that differs with both figures; a type aws publishes and we do not know fails too.
"""

from __future__ import annotations

import json

import pytest

from scripts.extract_limit_sources import parse_max_pods
from scripts.gen_limits import SOURCES
from vpccni.config.limits import known_instance_types, lookup, max_pods


def _differences(figures: dict[str, int]) -> list[str]:
    lines = []
    for name in sorted(figures):
        limits = lookup(name)
        if limits is None:
            lines.append(f"{name}: aws {figures[name]}, unknown here")
        elif max_pods(limits) != figures[name]:
            lines.append(f"{name}: aws {figures[name]}, ours {max_pods(limits)}")
    return lines


@pytest.mark.parametrize(("source", "count"), [
    ("aws_vpc_cni_eni_max_pods.txt", 1391),  # aws-node's misc/eni-max-pods.txt
    ("eks_ami_eni_max_pods.txt", 1197),  # the EKS AMI's, at the last commit that had it
])
def test_max_pods_equals_every_figure_aws_publishes(source, count):
    figures = parse_max_pods((SOURCES / source).read_text())
    assert len(figures) == count
    differences = _differences(figures)
    assert not differences, (f"{len(differences)} of {count} types differ from {source}:\n"
                             + "\n".join(differences))


def test_limits_equal_what_nodeadm_computes_max_pods_from():
    info = json.loads((SOURCES / "eks_ami_instance_info.json").read_text())["types"]
    assert len(info) == 1384
    differences = []
    for name, (enis, ipv4) in sorted(info.items()):
        limits = lookup(name)
        ours = None if limits is None else (limits.max_enis, limits.ipv4_per_eni)
        if ours != (enis, ipv4):
            differences.append(f"{name}: nodeadm (ENIs, IPv4 per ENI) {(enis, ipv4)}, ours {ours}")
    assert not differences, f"{len(differences)} types differ from nodeadm's data:\n" + "\n".join(differences)


def test_limits_equal_aws_nodes_table_field_by_field():
    aws = json.loads((SOURCES / "aws_vpc_cni.json").read_text())["types"]
    differences = []
    for name, (enis, ipv4, _card, cards, hypervisor, bare_metal) in sorted(aws.items()):
        limits = lookup(name)
        if limits is None:
            differences.append(f"{name}: unknown here")
            continue
        ours = (limits.max_enis, limits.ipv4_per_eni, limits.network_cards, limits.bare_metal)
        if ours != (enis, ipv4, len(cards), bare_metal) or limits.hypervisor not in (hypervisor, ""):
            differences.append(f"{name}: aws {(enis, ipv4, len(cards), bare_metal, hypervisor)}, "
                               f"ours {(*ours, limits.hypervisor)}")
    assert not differences, (f"{len(differences)} types differ from aws-node's table:\n"
                             + "\n".join(differences))


def test_the_types_that_were_missing_or_wrong_resolve_to_aws_figures():
    # Before the table took aws-node's data: these 22 were unknown (a node could not bootstrap) ...
    once_unknown = {
        "bmn-sf1.metal": 737, "c5a.metal": 737, "c5ad.metal": 737, "cr1.8xlarge": 234, "dl1.24xlarge": 737,
        "f1.16xlarge": 394, "f1.2xlarge": 58, "f1.4xlarge": 234, "g4ad.16xlarge": 234, "g4ad.2xlarge": 8,
        "g4ad.4xlarge": 29, "g4ad.8xlarge": 58, "g4ad.xlarge": 8, "hs1.8xlarge": 234, "p3.16xlarge": 234,
        "p3.2xlarge": 58, "p3.8xlarge": 234, "u-12tb1.metal": 147, "u-18tb1.metal": 737,
        "u-24tb1.metal": 737, "u-6tb1.metal": 147, "u-9tb1.metal": 147,
    }
    # ... and these 4 took moto's two-card split (394 and 590).
    once_wrong = {"i7ie.48xlarge": 737, "i7ie.metal-48xl": 737,
                  "i8ge.48xlarge": 1178, "i8ge.metal-48xl": 1178}
    for name, pods in {**once_unknown, **once_wrong}.items():
        limits = lookup(name)
        assert limits is not None and max_pods(limits) == pods, name
    assert set(once_unknown) <= set(known_instance_types())


def test_prefix_delegation_on_bare_metal_follows_aws_node():
    # aws-node delegates prefixes on bare metal (EC2 does); EKS's calculator counts Nitro only. We follow
    # aws-node: the figure is what the node's ipamd will actually allocate.
    metal = lookup("u-6tb1.metal")
    assert metal is not None and metal.bare_metal and metal.hypervisor == ""
    assert max_pods(metal, prefix_delegation=True) == 5 * 29 * 16 + 2
