"""Instance-type network limits and the max-pods formula.

Limits come from a bundled table (``vpccni/data/instance_limits.json``, every type moto knows, generated
by ``scripts/gen_limits.py`` from moto's DescribeInstanceTypes data) and, for a type missing from it, from
DescribeInstanceTypes at run time: the cloud layer fetches the item, :meth:`InstanceLimits.from_describe`
parses it. Both paths go through ``from_describe``, so the table and the runtime fallback cannot disagree
(aws-node's do: its table uses the default network card's ENI limit, its fallback the instance-wide one).

``max_ENIs`` is the *default network card's* ``MaximumNetworkInterfaces``, as in aws-node's table: ipamd
manages card 0 only, so ENIs on other cards carry no pods (p4d.24xlarge: 15, not 60).

Max pods (aws-node ``misc/eni-max-pods.txt`` and EKS ``max-pods-calculator.sh``)::

    secondary IPs      ENIs x (IPv4 per ENI - 1) + 2
    prefix delegation  ENIs x ((IPv4 per ENI - 1) x 16) + 2     (Nitro or bare metal only)

The "- 1" is each ENI's primary address, which no pod gets; the "+ 2" are the host-network pods aws-node
counts (itself and kube-proxy). MAX_ENI caps ENIs; custom networking takes the primary ENI away (ENIs - 1);
the calculator's recommended value caps the result at 110 pods (<= 30 vCPUs) or 250 (more).

Standard library only; the table is read on first lookup, not at import.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields
from importlib import resources
from typing import Any

from vpccni.errors import UnknownInstanceType

DATA_FILE = "data/instance_limits.json"
#: Addresses in one delegated IPv4 prefix (/28).
ADDRESSES_PER_PREFIX = 16
#: Pods on the node's host network counted by the formula (aws-node and kube-proxy).
HOST_NETWORK_PODS = 2
#: max-pods-calculator.sh's recommended ceilings and the vCPU count that separates them.
POD_CEILING_LOW_CPU, POD_CEILING_HIGH_CPU, HIGH_CPU_ABOVE = 110, 250, 30


@dataclass(frozen=True)
class InstanceLimits:
    """What one instance type allows, as far as pod addressing is concerned."""

    instance_type: str
    #: ENIs attachable on the default network card (DescribeInstanceTypes NetworkCards[default]).
    max_enis: int
    #: IPv4 addresses per ENI, primary included (Ipv4AddressesPerInterface); also the /28 slot count.
    ipv4_per_eni: int
    #: IPv6 addresses per ENI (Ipv6AddressesPerInterface).
    ipv6_per_eni: int
    #: "nitro" or "xen"; "" when EC2 reports none (bare metal).
    hypervisor: str
    #: A bare-metal type (no hypervisor; prefix delegation works).
    bare_metal: bool
    #: Network cards (MaximumNetworkCards); ipamd uses card 0.
    network_cards: int
    #: Default vCPUs (VCpuInfo.DefaultVCpus); selects the max-pods ceiling.
    vcpus: int

    @property
    def supports_prefix_delegation(self) -> bool:
        """EC2 delegates /28 prefixes only to ENIs of Nitro-based (or bare-metal) instances."""
        return self.hypervisor == "nitro" or self.bare_metal

    @classmethod
    def from_describe(cls, item: Mapping[str, Any]) -> InstanceLimits:
        """Parse one ``InstanceTypes[]`` item of EC2 DescribeInstanceTypes.

        Raises :class:`UnknownInstanceType` (with the missing field as the cause) if the item lacks the
        network information needed: limits that cannot be known must not be guessed.
        """
        name = str(item.get("InstanceType", "?"))
        try:
            network = item["NetworkInfo"]
            default_card = network.get("DefaultNetworkCardIndex", 0)
            cards = network.get("NetworkCards") or []
            per_card = [card["MaximumNetworkInterfaces"] for card in cards
                        if card.get("NetworkCardIndex") == default_card]
            return cls(
                instance_type=name,
                max_enis=int(per_card[0] if per_card else network["MaximumNetworkInterfaces"]),
                ipv4_per_eni=int(network["Ipv4AddressesPerInterface"]),
                ipv6_per_eni=int(network.get("Ipv6AddressesPerInterface", 0)),
                hypervisor=str(item.get("Hypervisor", "")),
                bare_metal=bool(item.get("BareMetal", False)),
                network_cards=int(network.get("MaximumNetworkCards", max(len(cards), 1))),
                vcpus=int(item["VCpuInfo"]["DefaultVCpus"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as missing:
            raise UnknownInstanceType(name) from missing

    def to_row(self) -> list[Any]:
        """The table row (every field but the name, in field order)."""
        return list(astuple(self))[1:]

    @classmethod
    def from_row(cls, instance_type: str, row: list[Any]) -> InstanceLimits:
        return cls(instance_type, *row)


#: Column order of the bundled table's rows.
ROW_FIELDS = [f.name for f in fields(InstanceLimits)][1:]


@functools.cache
def _table() -> dict[str, list[Any]]:
    document = json.loads(resources.files("vpccni.config").joinpath(DATA_FILE).read_text(encoding="utf-8"))
    if document.get("fields") != ROW_FIELDS:
        # A table written for another InstanceLimits layout would silently shift every column.
        raise RuntimeError(f"{DATA_FILE} has columns {document.get('fields')}, expected {ROW_FIELDS}; "
                           "regenerate it with scripts/gen_limits.py")
    types: dict[str, list[Any]] = document["types"]
    return types


def lookup(instance_type: str) -> InstanceLimits | None:
    """Limits of ``instance_type`` from the bundled table, or None if it is not there."""
    row = _table().get(instance_type)
    return None if row is None else InstanceLimits.from_row(instance_type, row)


def require(instance_type: str) -> InstanceLimits:
    """Like :func:`lookup`, but a type missing from the bundled table raises UnknownInstanceType."""
    limits = lookup(instance_type)
    if limits is None:
        raise UnknownInstanceType(instance_type)
    return limits


def known_instance_types() -> list[str]:
    """Every instance type in the bundled table, sorted."""
    return sorted(_table())


def max_pods(
    limits: InstanceLimits,
    *,
    prefix_delegation: bool = False,
    custom_networking: bool = False,
    max_eni: int | None = None,
    cni_version_cap: bool = False,
) -> int:
    """The kubelet ``--max-pods`` value for ``limits`` (see the module docstring for the formula).

    ``prefix_delegation`` on a type that cannot delegate prefixes gives the secondary-IP figure, as
    aws-node falls back to secondary IPs there. ``max_eni`` (MAX_ENI, >= 1) caps the ENIs used.
    ``cni_version_cap`` applies max-pods-calculator.sh's recommended ceiling (110, or 250 above 30 vCPUs).
    """
    if max_eni is not None and max_eni < 1:
        raise ValueError(f"max_eni must be >= 1, got {max_eni}")
    enis = limits.max_enis if max_eni is None else min(max_eni, limits.max_enis)
    if custom_networking:
        enis = max(enis - 1, 0)
    addresses_per_eni = limits.ipv4_per_eni - 1
    if prefix_delegation and limits.supports_prefix_delegation:
        addresses_per_eni *= ADDRESSES_PER_PREFIX
    pods = enis * addresses_per_eni + HOST_NETWORK_PODS
    if cni_version_cap:
        pods = min(pods, POD_CEILING_HIGH_CPU if limits.vcpus > HIGH_CPU_ABOVE else POD_CEILING_LOW_CPU)
    return pods
