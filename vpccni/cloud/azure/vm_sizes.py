"""Azure VM sizes as pod addressing sees them: NICs per size, IP configurations per NIC and per VM.

Sources (Azure docs): "Dsv5-series" size table (max NICs: D2s_v5 and D4s_v5 2, D8s_v5 4, D16s_v5 and
larger 8); "Azure subscription and service limits", networking (256 private IP configurations per NIC;
a VM's NICs together also hold at most 256, so more NICs do not lift the VM's total); "Azure CNI" and
"Configure Azure CNI networking in AKS" (at most 250 pods per node). NICs are fixed for a running VM
(attaching or detaching one needs the VM deallocated), so a node's pod addresses are IP configurations
on the NICs it booted with.

Standard library only: ``vpccni max-pods`` and the local Azure read the same table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vpccni.errors import UnknownInstanceType

IP_CONFIGS_PER_NIC = 256
IP_CONFIGS_PER_VM = 256
MAX_PODS_PER_NODE = 250


@dataclass(frozen=True)
class VmSize:
    name: str
    vcpus: int
    max_nics: int


_SIZES = {
    s.name.lower(): s
    for s in (
        VmSize("Standard_D2s_v5", 2, 2),
        VmSize("Standard_D4s_v5", 4, 2),
        VmSize("Standard_D8s_v5", 8, 4),
        VmSize("Standard_D16s_v5", 16, 8),
        VmSize("Standard_D32s_v5", 32, 8),
        VmSize("Standard_D48s_v5", 48, 8),
        VmSize("Standard_D64s_v5", 64, 8),
        VmSize("Standard_D96s_v5", 96, 8),
    )
}


def lookup(size: str) -> VmSize | None:
    """The size's limits (ARM's size names are case-insensitive), or None when the table lacks it."""
    return _SIZES.get(size.lower())


def require(size: str) -> VmSize:
    found = lookup(size)
    if found is None:
        raise UnknownInstanceType(size)
    return found


def known_sizes() -> list[str]:
    return sorted(s.name for s in _SIZES.values())


def pod_addresses(nics: int) -> int:
    """IP configurations pods can have on a VM with ``nics`` NICs: the per-VM cap bounds them all, and
    each NIC's primary configuration is the node's own address."""
    if nics < 1:
        raise ValueError(f"nics must be >= 1, got {nics}")
    return min(IP_CONFIGS_PER_NIC * nics, IP_CONFIGS_PER_VM) - nics


def max_pods(size: VmSize, nics: int = 1) -> int:
    """kubelet's ``--max-pods`` for ``size`` booted with ``nics`` NICs (at most the size's own limit)."""
    if nics > size.max_nics:
        raise ValueError(f"{size.name} takes at most {size.max_nics} NICs, got {nics}")
    return min(MAX_PODS_PER_NODE, pod_addresses(nics))


def instance_type_info(size: VmSize) -> Mapping[str, object]:
    """The size as EC2's ``InstanceTypeInfo`` shape, which :mod:`vpccni.config.limits` parses, plus the Azure
    limits that shape cannot say (``AzureIpConfigurationsPerVm``, ``AzureMaxPodsPerNode``). No
    hypervisor and no bare metal: nothing here can delegate prefixes."""
    return {
        "InstanceType": size.name,
        "VCpuInfo": {"DefaultVCpus": size.vcpus},
        "Hypervisor": "",
        "BareMetal": False,
        "NetworkInfo": {
            "MaximumNetworkInterfaces": size.max_nics,
            "MaximumNetworkCards": 1,
            "DefaultNetworkCardIndex": 0,
            "NetworkCards": [{"NetworkCardIndex": 0, "MaximumNetworkInterfaces": size.max_nics}],
            "Ipv4AddressesPerInterface": IP_CONFIGS_PER_NIC,
            "Ipv6AddressesPerInterface": 0,
        },
        "AzureIpConfigurationsPerVm": IP_CONFIGS_PER_VM,
        "AzureMaxPodsPerNode": MAX_PODS_PER_NODE,
    }
