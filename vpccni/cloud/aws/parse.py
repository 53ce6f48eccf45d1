"""EC2 response shapes -> the provider's frozen dataclasses. Pure functions, no I/O.

EC2 answers are loosely typed dicts; these parsers are the only code that reads their keys, and they
fail with a :class:`~vpccni.errors.CloudInvalidRequest` naming the missing field rather than a bare
KeyError when the cloud (or an emulator) sends something malformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vpccni.cloud.base import Attachment, InstanceInfo, InterfaceSlot, NetworkInterface, Subnet, Tags
from vpccni.errors import CloudInvalidRequest

Raw = Mapping[str, Any]


def _require(raw: Raw, key: str, what: str) -> Any:
    try:
        return raw[key]
    except KeyError:
        raise CloudInvalidRequest(what, "MalformedResponse", f"{what} lacks {key!r}: {dict(raw)!r}") from None


def parse_tags(raw_tags: Any) -> Tags:
    return tuple(sorted((str(t["Key"]), str(t.get("Value", ""))) for t in raw_tags or ()))


def parse_attachment(raw: Raw | None) -> Attachment | None:
    if not raw or "AttachmentId" not in raw:
        return None
    return Attachment(
        attachment_id=raw["AttachmentId"],
        instance_id=str(raw.get("InstanceId", "")),
        device_index=int(raw.get("DeviceIndex", 0)),
        status=str(raw.get("Status", "")),
        delete_on_termination=bool(raw.get("DeleteOnTermination", False)),
        network_card_index=int(raw.get("NetworkCardIndex", 0)),
    )


def parse_interface(raw: Raw) -> NetworkInterface:
    """One item of ``NetworkInterfaces`` (DescribeNetworkInterfaces) or ``NetworkInterface`` (Create)."""
    what = "NetworkInterface"
    primary = str(_require(raw, "PrivateIpAddress", what))
    secondaries = tuple(
        str(a["PrivateIpAddress"])
        for a in raw.get("PrivateIpAddresses", ())
        if not a.get("Primary") and a.get("PrivateIpAddress") != primary
    )
    return NetworkInterface(
        interface_id=str(_require(raw, "NetworkInterfaceId", what)),
        subnet_id=str(_require(raw, "SubnetId", what)),
        vpc_id=str(_require(raw, "VpcId", what)),
        availability_zone=str(raw.get("AvailabilityZone", "")),
        mac=str(raw.get("MacAddress", "")),
        status=str(raw.get("Status", "")),
        primary_address=primary,
        secondary_addresses=secondaries,
        prefixes=tuple(str(p["Ipv4Prefix"]) for p in raw.get("Ipv4Prefixes", ())),
        security_group_ids=tuple(str(g["GroupId"]) for g in raw.get("Groups", ())),
        description=str(raw.get("Description", "")),
        tags=parse_tags(raw.get("TagSet")),
        attachment=parse_attachment(raw.get("Attachment")),
        interface_type=str(raw.get("InterfaceType", "interface")),
        requester_managed=bool(raw.get("RequesterManaged", False)),
    )


def parse_subnet(raw: Raw) -> Subnet:
    what = "Subnet"
    return Subnet(
        subnet_id=str(_require(raw, "SubnetId", what)),
        vpc_id=str(_require(raw, "VpcId", what)),
        availability_zone=str(raw.get("AvailabilityZone", "")),
        cidr=str(_require(raw, "CidrBlock", what)),
        available_address_count=int(raw.get("AvailableIpAddressCount", 0)),
        tags=parse_tags(raw.get("Tags")),
    )


def parse_instance(raw: Raw) -> InstanceInfo:
    """One item of ``Reservations[].Instances`` (DescribeInstances)."""
    what = "Instance"
    instance_id = str(_require(raw, "InstanceId", what))
    nics = list(raw.get("NetworkInterfaces", ()))
    slots = tuple(
        sorted(
            (
                InterfaceSlot(
                    interface_id=str(n["NetworkInterfaceId"]),
                    device_index=int(n["Attachment"].get("DeviceIndex", 0)),
                    network_card_index=int(n["Attachment"].get("NetworkCardIndex", 0)),
                )
                for n in nics
                if n.get("Attachment")
            ),
            key=lambda s: (s.network_card_index, s.device_index),
        )
    )
    primary = next(
        (
            n
            for n in nics
            if n.get("Attachment", {}).get("DeviceIndex") == 0
            and int(n.get("Attachment", {}).get("NetworkCardIndex", 0)) == 0
        ),
        None,
    )
    if primary is None:
        raise CloudInvalidRequest(
            what, "MalformedResponse", f"instance {instance_id} has no device-index-0 interface"
        )
    placement = raw.get("Placement", {})
    return InstanceInfo(
        instance_id=instance_id,
        instance_type=str(_require(raw, "InstanceType", what)),
        availability_zone=str(placement.get("AvailabilityZone", "")),
        subnet_id=str(primary.get("SubnetId") or raw.get("SubnetId", "")),
        vpc_id=str(primary.get("VpcId") or raw.get("VpcId", "")),
        primary_interface_id=str(primary["NetworkInterfaceId"]),
        security_group_ids=tuple(str(g["GroupId"]) for g in primary.get("Groups", ())),
        state=str(raw.get("State", {}).get("Name", "")),
        interfaces=slots,
    )
