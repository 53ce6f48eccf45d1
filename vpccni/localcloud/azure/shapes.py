"""ARM's JSON shapes for the resources the local Azure serves, and the parsing of a NIC PUT body.

Shapes follow the Microsoft.Network and Microsoft.Compute REST references as the SDK deserialises them
(``azure.mgmt.network.models.NetworkInterface``, ``Subnet``; a VM's ``hardwareProfile.vmSize`` and
``networkProfile.networkInterfaces[].properties.primary``): resource ``id``, ``name``, ``type``,
``location``, ``etag`` and ``properties`` in camelCase. A NIC's MAC address is ARM's dashed upper-case
form (``00-0D-3A-..``); IMDS shows it without separators.
"""

from __future__ import annotations

from typing import Any

from vpccni.localcloud.azure.model import (
    ArmError,
    IpConfig,
    NicState,
    SubnetState,
    VmState,
    VnetState,
    WantedConfig,
)


def _ip_config_json(nic: NicState, config: IpConfig) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "provisioningState": nic.provisioning_state,
        "privateIPAddress": config.private_ip,
        "privateIPAllocationMethod": config.allocation,
        "privateIPAddressVersion": "IPv4",
        "subnet": {"id": config.subnet_id},
        "primary": config.primary,
    }
    if config.asg_ids:
        properties["applicationSecurityGroups"] = [{"id": a} for a in config.asg_ids]
    return {
        "name": config.name,
        "id": f"{nic.id}/ipConfigurations/{config.name}",
        "etag": nic.etag,
        "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
        "properties": properties,
    }


def nic_json(nic: NicState) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "provisioningState": nic.provisioning_state,
        "resourceGuid": nic.resource_guid,
        "ipConfigurations": [_ip_config_json(nic, c) for c in nic.ip_configs],
        "macAddress": nic.mac,
        "primary": nic.primary,
        "enableAcceleratedNetworking": False,
        "enableIPForwarding": False,
        "nicType": "Standard",
        "vnetEncryptionSupported": False,
    }
    if nic.vm_id:
        properties["virtualMachine"] = {"id": nic.vm_id}
    return {
        "name": nic.name,
        "id": nic.id,
        "etag": nic.etag,
        "type": "Microsoft.Network/networkInterfaces",
        "location": nic.location,
        "tags": dict(nic.tags),
        "properties": properties,
    }


def subnet_json(subnet: SubnetState) -> dict[str, Any]:
    return {
        "name": subnet.name,
        "id": subnet.id,
        "etag": 'W/"00000000-0000-0000-0000-000000000000"',
        "type": "Microsoft.Network/virtualNetworks/subnets",
        "properties": {
            "provisioningState": "Succeeded",
            "addressPrefix": str(subnet.prefix),
            "ipConfigurations": [{"id": holder} for holder in subnet.used.values()],
            "privateEndpointNetworkPolicies": "Disabled",
            "privateLinkServiceNetworkPolicies": "Enabled",
        },
    }


def vnet_json(vnet: VnetState) -> dict[str, Any]:
    return {
        "name": vnet.name,
        "id": vnet.id,
        "etag": 'W/"00000000-0000-0000-0000-000000000000"',
        "type": "Microsoft.Network/virtualNetworks",
        "location": vnet.location,
        "properties": {
            "provisioningState": "Succeeded",
            "addressSpace": {"addressPrefixes": [str(vnet.prefix)]},
            "subnets": [subnet_json(s) for s in vnet.subnets.values()],
        },
    }


def vm_json(vm: VmState) -> dict[str, Any]:
    return {
        "name": vm.name,
        "id": vm.id,
        "type": "Microsoft.Compute/virtualMachines",
        "location": vm.location,
        "zones": [vm.zone],
        "properties": {
            "vmId": vm.vm_id,
            "hardwareProfile": {"vmSize": vm.size},
            "networkProfile": {
                "networkInterfaces": [
                    {"id": nic_id, "properties": {"primary": index == 0}}
                    for index, nic_id in enumerate(vm.nic_ids)
                ]
            },
            "provisioningState": "Succeeded",
        },
    }


def _bad(message: str) -> ArmError:
    return ArmError(400, "InvalidRequestFormat", f"Cannot parse the request. {message}")


def parse_nic_put(body: Any) -> tuple[list[WantedConfig], dict[str, str] | None]:
    """The IP configurations (and tags, None when absent) a NIC PUT body asks for."""
    if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
        raise _bad("Expected a network interface with properties.")
    raw_configs = body["properties"].get("ipConfigurations")
    if not isinstance(raw_configs, list):
        raise _bad("properties.ipConfigurations must be a list.")
    wanted = []
    for raw in raw_configs:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            raise _bad("Every IP configuration needs a name.")
        props = raw.get("properties") or {}
        subnet = props.get("subnet") or {}
        address = props.get("privateIPAddress")
        method = str(props.get("privateIPAllocationMethod") or ("Static" if address else "Dynamic"))
        asgs = tuple(str(a.get("id", "")) for a in props.get("applicationSecurityGroups") or ())
        wanted.append(
            WantedConfig(
                name=raw["name"],
                subnet_id=str(subnet.get("id") or ""),
                primary=props.get("primary"),
                private_ip=str(address) if address and method == "Static" else None,
                allocation=method,
                asg_ids=asgs,
            )
        )
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(isinstance(v, str) for v in tags.values())):
        raise _bad("tags must be an object of strings.")
    return wanted, tags


def error_body(code: str, message: str) -> dict[str, Any]:
    """ARM's error document (the "Common error response" of the ARM REST guidelines)."""
    return {"error": {"code": code, "message": message}}
