"""ARM resources -> the cloud interface's frozen dataclasses.

Mapping: interface = NIC (its ARM resource id); primary address = the primary IP configuration's; secondary
addresses = every other IP configuration's, in the NIC's order; prefixes = none (Azure has no delegated
prefixes on a VM NIC); security groups = the application security groups of the primary configuration;
subnet = the primary configuration's subnet; "VPC" = the subnet's virtual network; zone = the region
(Azure subnets span a region's zones). MACs are given in the Linux form (``00:0d:3a:..``) that ipamd
matches links by; ARM writes them ``00-0D-3A-..`` and IMDS ``000D3A..``.

A subnet's free addresses: its size less Azure's five reserved addresses less the IP configurations it
lists (what cilium's Azure IPAM computes, ``parseSubnet`` in cilium/cilium pkg/azure/api/api.go).
NIC models are azure-mgmt-network's (attribute access), VM documents plain JSON.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from vpccni.cloud.base import Attachment, InstanceInfo, InterfaceSlot, NetworkInterface, Subnet, freeze_tags
from vpccni.errors import CloudInvalidRequest

RESERVED_PER_SUBNET = 5  # network, gateway (.1), two DNS (.2, .3), broadcast: Azure virtual network FAQ


def linux_mac(mac: str) -> str:
    """``00-0D-3A-12-34-56`` or ``000D3A123456`` -> ``00:0d:3a:12:34:56``."""
    digits = "".join(c for c in mac if c.isalnum()).lower()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def vnet_of(subnet_id: str) -> str:
    """The virtual network's id of a subnet id (``.../virtualNetworks/v/subnets/s`` -> ``.../v``)."""
    head, sep, _ = subnet_id.rpartition("/subnets/")
    return head if sep else ""


def split_resource_id(resource_id: str, kind: str) -> tuple[str, str]:
    """(resource group, name) of ``/subscriptions/s/resourceGroups/rg/providers/<kind>/name``."""
    parts = resource_id.strip("/").split("/")
    if (
        len(parts) != 8
        or parts[2].lower() != "resourcegroups"
        or f"{parts[5]}/{parts[6]}".lower() != kind.lower()
    ):
        raise CloudInvalidRequest("ParseResourceId", "InvalidResourceId", f"not a {kind} id: {resource_id!r}")
    return parts[3], parts[7]


def primary_config(nic: Any) -> Any:
    configs = list(nic.ip_configurations or ())
    return next((c for c in configs if c.primary), configs[0] if configs else None)


def parse_nic(nic: Any, *, device_index: int | None = None) -> NetworkInterface:
    """An azure-mgmt-network ``NetworkInterface`` as the interface sees it. ``device_index``: the NIC's
    position in its VM's list (None: 0 for the VM's primary NIC, 1 for another)."""
    primary = primary_config(nic)
    subnet_id = str(primary.subnet.id) if primary is not None and primary.subnet is not None else ""
    vm_id = nic.virtual_machine.id if nic.virtual_machine is not None else None
    attachment = None
    if vm_id:
        index = device_index if device_index is not None else (0 if nic.primary else 1)
        attachment = Attachment(
            attachment_id=str(nic.id),
            instance_id=str(vm_id),
            device_index=index,
            status="attached",
            delete_on_termination=True,
        )
    secondaries = tuple(str(c.private_ip_address) for c in nic.ip_configurations or () if c is not primary)
    groups = (
        tuple(str(g.id) for g in (primary.application_security_groups or ())) if primary is not None else ()
    )
    return NetworkInterface(
        interface_id=str(nic.id),
        subnet_id=subnet_id,
        vpc_id=vnet_of(subnet_id),
        availability_zone=str(nic.location or ""),
        mac=linux_mac(str(nic.mac_address or "")),
        status="in-use" if vm_id else "available",
        primary_address=str(primary.private_ip_address) if primary is not None else "",
        secondary_addresses=secondaries,
        prefixes=(),
        security_group_ids=groups,
        tags=freeze_tags(dict(nic.tags or {})),
        attachment=attachment,
    )


def parse_subnet(subnet: Any, location: str) -> Subnet:
    prefix = str(subnet.address_prefix or (subnet.address_prefixes or [""])[0])
    size = ipaddress.ip_network(prefix).num_addresses if prefix else 0
    used = len(subnet.ip_configurations or ())
    return Subnet(
        subnet_id=str(subnet.id),
        vpc_id=vnet_of(str(subnet.id)),
        availability_zone=location,
        cidr=prefix,
        available_address_count=max(size - RESERVED_PER_SUBNET - used, 0),
    )


def vm_nic_ids(vm: Mapping[str, Any]) -> list[str]:
    """The VM's NIC ids, primary first (ARM lists them in the order they were given)."""
    refs = vm.get("properties", {}).get("networkProfile", {}).get("networkInterfaces", [])
    ordered = sorted(refs, key=lambda r: not (r.get("properties") or {}).get("primary", len(refs) == 1))
    return [str(r["id"]) for r in ordered]


def parse_vm(vm: Mapping[str, Any], primary_nic: NetworkInterface, nic_ids: Sequence[str]) -> InstanceInfo:
    properties = vm.get("properties", {})
    return InstanceInfo(
        instance_id=str(vm["id"]),
        instance_type=str(properties.get("hardwareProfile", {}).get("vmSize", "")),
        availability_zone=str(vm.get("location", "")),
        subnet_id=primary_nic.subnet_id,
        vpc_id=primary_nic.vpc_id,
        primary_interface_id=primary_nic.interface_id,
        security_group_ids=primary_nic.security_group_ids,
        state="running" if properties.get("provisioningState", "Succeeded") == "Succeeded" else "pending",
        interfaces=tuple(InterfaceSlot(nic_id, index) for index, nic_id in enumerate(nic_ids)),
    )
