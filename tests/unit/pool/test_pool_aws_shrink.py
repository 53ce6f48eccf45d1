"""VPCCNI_SHRINK=aws gives aws-node's shrink: aws's documented pools are reached on the way DOWN too.

aws's examples (docs/eni-and-ip-target.md's table and the README's m4.4xlarge WARM_ENI_TARGET=1 example,
github:aws/amazon-vpc-cni-k8s) give the pool for a pod count; with aws's shrink that pool depends on the
current count only, so a node that ran the group's most pods and lost some must settle on the row of
the count it has left. Everything comes from the settings as ipamd maps them (targets, capacity from the
bundled limits table, the scale-down window), through the pure simulator.
"""

from __future__ import annotations

import pytest

from ipamd.reconcile.node import node_capacity, pool_targets
from tests.unit.pool.poolsim import SimNode
from vpccni.config.limits import require
from vpccni.config.settings import Settings

AWS = {"VPCCNI_SHRINK": "aws"}
WET1: dict[str, str] = {}  # WARM_ENI_TARGET=1 is the default
WIT1_MIT1 = {"WARM_IP_TARGET": "1", "MINIMUM_IP_TARGET": "1"}
WIT2_MIT5 = {"WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "5"}
WIT5_MIT10 = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "10"}


def scaled_down(instance_type: str, env: dict[str, str], top: int, pods: int) -> SimNode:
    """A node that settled with ``top`` pods, lost the newest ``top - pods`` of them and settled again."""
    settings = Settings.from_env(env)
    limits = require(instance_type)
    node = SimNode(node_capacity(settings, limits, unmanaged_enis=0), pool_targets(settings, limits),
                   peak_window_s=settings.effective_scale_down_window)
    node.settle()
    node.place_pods(top)
    node.settle()
    for pod in sorted(node.pods, key=lambda p: int(p.rsplit("-", 1)[1]))[pods:]:
        node.del_pod(pod)
    node.settle(max_ticks=2000)
    return node


# docs/eni-and-ip-target.md, every row: (type, targets, the group's most pods, pods, ENIs, secondary IPs,
# IPs per ENI sorted).
DOC_TABLE = [
    ("t3.small", WET1, 9, 9, 3, 9, [3, 3, 3]),
    ("t3.small", WET1, 9, 5, 3, 9, [3, 3, 3]),
    ("t3.small", WET1, 9, 0, 1, 3, [3]),
    ("t3.small", WIT1_MIT1, 9, 9, 3, 9, [3, 3, 3]),
    ("t3.small", WIT1_MIT1, 9, 5, 2, 6, [3, 3]),
    ("t3.small", WIT1_MIT1, 9, 0, 1, 1, [1]),
    ("t3.small", WIT2_MIT5, 9, 9, 3, 9, [3, 3, 3]),
    ("t3.small", WIT2_MIT5, 9, 5, 3, 7, [1, 3, 3]),
    ("t3.small", WIT2_MIT5, 9, 0, 2, 5, [2, 3]),
    ("p3dn.24xlarge", WET1, 95, 95, 3, 147, [49, 49, 49]),
    ("p3dn.24xlarge", WET1, 95, 3, 2, 98, [49, 49]),
    ("p3dn.24xlarge", WET1, 95, 0, 1, 49, [49]),
    ("p3dn.24xlarge", WIT5_MIT10, 45, 45, 2, 50, [1, 49]),
    ("p3dn.24xlarge", WIT5_MIT10, 45, 15, 1, 20, [20]),
    ("p3dn.24xlarge", WIT5_MIT10, 45, 7, 1, 12, [12]),
    ("p3dn.24xlarge", WIT5_MIT10, 45, 0, 1, 10, [10]),
]


@pytest.mark.parametrize(("instance_type", "env", "top", "pods", "enis", "ips", "per_eni"), DOC_TABLE)
def test_aws_shrink_lands_on_every_row_of_the_eni_and_ip_target_table(
    instance_type, env, top, pods, enis, ips, per_eni
):
    node = scaled_down(instance_type, {**env, **AWS}, top, pods)
    assert (len(node.enis), node.total_addresses(), sorted(node.cidr_counts())) == (enis, ips, per_eni)


@pytest.mark.parametrize("pods", range(59))
def test_aws_shrink_follows_the_readme_m4_4xlarge_example_down_from_58_pods(pods):
    # README: 8 ENIs x 30 addresses; "0-29 pods: one more ENI, 30-58: two more". At 0 pods aws's code
    # (and the docs table) keeps the primary only: see test_pool_examples.
    node = scaled_down("m4.4xlarge", AWS, 58, pods)
    assert node.cidr_counts() == [29] * (1 if pods == 0 else 2 if pods <= 29 else 3)


@pytest.mark.parametrize(("instance_type", "top", "pods", "ours", "aws"), [
    ("t3.small", 9, 0, [3, 3], [3]),
    ("p3dn.24xlarge", 95, 0, [49, 49], [49]),
    ("m4.4xlarge", 58, 29, [29, 29, 29], [29, 29]),
    ("m4.4xlarge", 58, 0, [29, 29], [29]),
])
def test_our_default_keeps_one_more_spare_eni_exactly_where_aws_frees_it(instance_type, top, pods, ours, aws):
    # The default's half-ENI margin holds an ENI where aws's gate (available >= 2 x per ENI) is met
    # exactly; VPCCNI_SCALE_DOWN_WINDOW=0 alone does not change that, VPCCNI_SHRINK=aws does.
    assert scaled_down(instance_type, WET1, top, pods).cidr_counts() == ours
    assert scaled_down(instance_type, {"VPCCNI_SCALE_DOWN_WINDOW": "0"}, top, pods).cidr_counts() == ours
    assert scaled_down(instance_type, AWS, top, pods).cidr_counts() == aws
