"""Read-only views of the local cloud's EC2 state.

The EC2 layer (moto + our semantics) produces these, and the local Azure the same for its VMs (a VM is an
instance, a NIC an ENI); the per-node IMDS and the VPC dataplane consume them. :class:`Node` is how a user
of either local cloud addresses one of its machines. They are plain frozen data so that a snapshot can be
kept (IMDS lag/stale modes) and compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class EniView:
    eni_id: str
    mac: str  # "0a:1b:2c:3d:4e:5f"
    subnet_id: str
    subnet_cidr: str  # "10.0.1.0/24"
    vpc_id: str
    vpc_cidrs: tuple[str, ...]  # every IPv4 CIDR block of the VPC
    availability_zone: str
    security_group_ids: tuple[str, ...]
    private_ips: tuple[str, ...]  # primary first, then secondaries in assignment order
    ipv4_prefixes: tuple[str, ...]  # delegated /28s, e.g. ("10.0.1.32/28",)
    status: str  # "available" | "in-use"
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    instance_id: str | None = None  # attached to
    device_index: int | None = None
    attachment_id: str | None = None
    attachment_status: str | None = None  # "attached" | "detached" | None
    delete_on_termination: bool = False

    @property
    def primary_ip(self) -> str:
        return self.private_ips[0]


@dataclass(frozen=True)
class InstanceView:
    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    subnet_id: str
    vpc_id: str
    state: str  # "running" | "terminated" | ...
    enis: tuple[EniView, ...]  # attached ENIs, by device index

    @property
    def primary_eni(self) -> EniView:
        return next(e for e in self.enis if e.device_index == 0)


@dataclass(frozen=True)
class Node:
    """One emulated instance (or Azure VM), as a user of the local cloud needs to address it."""

    instance_id: str  # Azure: the VM's resource id
    instance_type: str  # Azure: the VM size
    availability_zone: str  # Azure: the location
    region: str
    subnet_id: str
    vpc_id: str  # Azure: the virtual network's resource id
    primary_eni_id: str  # Azure: the primary NIC's resource id
    primary_ip: str
    mac: str  # the primary interface's, Linux form (0a:1b:..)
    imds_endpoint: str  # http://127.0.0.1:<port>; its IMDS server is LocalCloud.imds(node)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)
