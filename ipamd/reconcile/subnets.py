"""Where a new ENI goes: subnet discovery, as aws-node does it (ENABLE_SUBNET_DISCOVERY).

Candidates are the node's own subnet and every subnet of the node's VPC and availability zone tagged
``kubernetes.io/role/cni`` with a value other than ``0``; a subnet tagged ``0`` is excluded, the node's
own included. A subnet that carries ``cni.networking.k8s.aws/cluster/<name>`` tags belongs to those
clusters only; one without such tags is shared. Candidates are tried most free addresses first; the
reconciler moves to the next one when EC2 answers subnet-full (or no free /28).

:func:`discovery_candidates` is pure. :class:`SubnetCatalog` keeps what DescribeSubnets answered (CIDR
and tags by subnet id) so the datastore and the ENI-exclusion check need no extra call per ENI.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from vpccni.cloud.aws.tags import SUBNET_TAG_CLUSTER_PREFIX, SUBNET_TAG_ROLE_CNI
from vpccni.cloud.base import Subnet


def _for_cluster(subnet: Subnet, cluster_name: str | None) -> bool:
    clusters = {key[len(SUBNET_TAG_CLUSTER_PREFIX):] for key, _ in subnet.tags
                if key.startswith(SUBNET_TAG_CLUSTER_PREFIX)}
    return not clusters or (cluster_name is not None and cluster_name in clusters)


def excluded(subnet: Subnet) -> bool:
    """Tagged ``kubernetes.io/role/cni=0``: no pod addresses from this subnet."""
    return subnet.tag(SUBNET_TAG_ROLE_CNI) == "0"


def discovery_candidates(
    subnets: Iterable[Subnet], *, node_subnet_id: str, vpc_id: str, availability_zone: str,
    cluster_name: str | None,
) -> list[Subnet]:
    """The subnets a new ENI may use, most free addresses first (ties: by id, for a stable order)."""
    chosen = []
    for subnet in subnets:
        if subnet.vpc_id != vpc_id or subnet.availability_zone != availability_zone or excluded(subnet):
            continue
        tagged = subnet.tag(SUBNET_TAG_ROLE_CNI) is not None
        if subnet.subnet_id != node_subnet_id and not tagged:
            continue
        if not _for_cluster(subnet, cluster_name):
            continue
        chosen.append(subnet)
    return sorted(chosen, key=lambda s: (-s.available_address_count, s.subnet_id))


class SubnetCatalog:
    """Subnets seen in DescribeSubnets answers, by id. Owned by the event loop."""

    def __init__(self) -> None:
        self._by_id: dict[str, Subnet] = {}

    def remember(self, subnets: Sequence[Subnet]) -> None:
        for subnet in subnets:
            self._by_id[subnet.subnet_id] = subnet

    def get(self, subnet_id: str) -> Subnet | None:
        return self._by_id.get(subnet_id)

    def missing(self, subnet_ids: Iterable[str]) -> list[str]:
        return sorted({s for s in subnet_ids if s not in self._by_id})

    def cidr(self, subnet_id: str) -> str:
        subnet = self._by_id.get(subnet_id)
        return subnet.cidr if subnet else ""
