"""aws-node's tag and description conventions for the interfaces it manages (its awsutils package), which
its leaked-ENI sweep relies on.

Kept identical so that a cluster switching from aws-node keeps its leaked-interface sweeps, IAM
conditions and VPC Resource Controller cleanup working on interfaces either of them created. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

TAG_INSTANCE_ID = "node.k8s.amazonaws.com/instance_id"
"""On every interface ipamd manages; the leaked-interface sweep filters on this key."""
TAG_CREATED_AT = "node.k8s.amazonaws.com/createdAt"
"""RFC 3339 creation time; the sweep leaves interfaces younger than its grace period alone."""
TAG_CLUSTER_NAME = "cluster.k8s.amazonaws.com/name"
"""CLUSTER_NAME, when set; scopes the sweep to this cluster."""
TAG_ENI_OWNER = "eks:eni:owner"
TAG_ENI_OWNER_VALUE = "amazon-vpc-cni"
"""Lets the VPC Resource Controller clean up leaks too (set with CLUSTER_NAME, as aws-node does)."""
TAG_NO_MANAGE = "node.k8s.amazonaws.com/no_manage"
"""User-set ``true``: ipamd leaves that interface alone."""
SUBNET_TAG_ROLE_CNI = "kubernetes.io/role/cni"
"""Subnet discovery: ``1`` includes a subnet, ``0`` excludes it."""
SUBNET_TAG_CLUSTER_PREFIX = "cni.networking.k8s.aws/cluster/"
"""Subnet discovery: ``<prefix><cluster name>`` marks a subnet as this cluster's."""
DESCRIPTION_PREFIX = "aws-K8S-"
"""Descriptions of interfaces ipamd creates are ``aws-K8S-<instance id>``."""
RESERVED_TAG_MARK = "k8s.amazonaws.com"
"""User tags (ADDITIONAL_ENI_TAGS) whose key contains this are dropped, as aws-node drops them."""


def interface_description(instance_id: str) -> str:
    return f"{DESCRIPTION_PREFIX}{instance_id}"


def format_created_at(when: datetime) -> str:
    """RFC 3339 in UTC, second precision, as aws-node writes it (``2024-05-01T12:00:00Z``)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_created_at(value: str) -> datetime | None:
    """The time in a createdAt tag, or None when it is not RFC 3339 (then the sweep re-tags it)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def interface_tags(
    *,
    instance_id: str,
    created_at: datetime,
    cluster_name: str = "",
    additional: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The tags of a new interface: user tags first, so ours always win on a clash."""
    tags = {k: v for k, v in (additional or {}).items() if RESERVED_TAG_MARK not in k}
    tags[TAG_INSTANCE_ID] = instance_id
    tags[TAG_CREATED_AT] = format_created_at(created_at)
    if cluster_name:
        tags[TAG_CLUSTER_NAME] = cluster_name
        tags[TAG_ENI_OWNER] = TAG_ENI_OWNER_VALUE
    return tags
