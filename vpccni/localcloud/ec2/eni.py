"""ENI lifecycle with EC2's rules: create, attach, detach, modify (DeleteOnTermination), delete.

What moto lacks and this adds, each with the code real EC2 answers:

- CreateNetworkInterface picks the primary and secondary addresses and /28 prefixes itself (unique,
  never reserved) and passes them to moto explicitly; an ENI holds at most the largest type's slot count
  until it is attached (``PrivateIpAddressLimitExceeded``); a full subnet is
  ``InsufficientFreeAddressesInSubnet``, a taken explicit address ``InvalidIPAddress.InUse``.
- AttachNetworkInterface: ``InvalidNetworkInterface.InUse`` for an ENI already attached,
  ``InvalidParameterValue`` for a device index already used on the instance, ``AttachmentLimitExceeded``
  past the type's ENIs on its default network card (vpccni's limits table), ``PrivateIpAddressLimitExceeded``
  when the ENI holds more addresses than the type allows per ENI. Only network card 0 is emulated: another
  ``NetworkCardIndex`` is ``Unsupported``.
- DetachNetworkInterface refuses the primary ENI (``OperationNotPermitted``); a detached ENI forgets its
  DeleteOnTermination (it is an attribute of the attachment).
- ModifyNetworkInterfaceAttribute honours ``Attachment.DeleteOnTermination`` (moto ignores it).
- DeleteNetworkInterface refuses an attached ENI (``InvalidParameterValue`` "... is currently in use").
"""

from __future__ import annotations

from typing import Any

from vpccni.localcloud.ec2.handlers import Ec2Context, Forward, HandlerTable
from vpccni.localcloud.ec2.ips import (
    check_addresses,
    check_prefixes,
    check_slots,
    choose_addresses,
    choose_prefixes,
    combination,
)
from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest, XmlDoc, invalid_parameter
from vpccni.localcloud.ec2.state import limits_for, unattached_slot_limit

_ADDRESS_PARAMS = (
    "PrivateIpAddress",
    "PrivateIpAddresses",
    "SecondaryPrivateIpAddressCount",
    "Ipv4Prefix",
    "Ipv4PrefixCount",
)


def create_network_interface(ctx: Ec2Context, request: QueryRequest) -> Forward:
    state = ctx.state
    subnet = state.subnet(request.get("SubnetId"))
    listed = request.get_struct_list("PrivateIpAddresses")
    count = request.get_int("SecondaryPrivateIpAddressCount")
    explicit_prefixes = [p.get("Ipv4Prefix", "") for p in request.get_struct_list("Ipv4Prefix")]
    prefix_count = request.get_int("Ipv4PrefixCount")
    if count and len(listed) > 1:
        raise combination("PrivateIpAddresses", "SecondaryPrivateIpAddressCount")
    if explicit_prefixes and prefix_count:
        raise combination("Ipv4Prefixes", "Ipv4PrefixCount")
    if count and (explicit_prefixes or prefix_count):
        raise combination("SecondaryPrivateIpAddressCount", "Ipv4Prefixes/Ipv4PrefixCount")

    primary, explicit_secondaries = _explicit_addresses(request.get("PrivateIpAddress"), listed)
    explicit = [primary, *explicit_secondaries] if primary else explicit_secondaries
    secondaries_total = len(explicit_secondaries) + count
    check_slots(0, 1 + secondaries_total + len(explicit_prefixes) + prefix_count, unattached_slot_limit())

    space = state.space(subnet)
    check_addresses(space, explicit, in_use_code="InvalidIPAddress.InUse")
    chosen = choose_addresses(ctx, space.plus(explicit), (0 if primary else 1) + count)
    if not primary:
        primary, chosen = chosen[0], chosen[1:]
    secondaries = [*explicit_secondaries, *chosen]
    space = space.plus([primary, *secondaries])
    check_prefixes(space, explicit_prefixes)
    prefixes = [
        *explicit_prefixes,
        *choose_prefixes(ctx, space.plus(prefixes=explicit_prefixes), prefix_count),
    ]

    rewritten = request.without(*_ADDRESS_PARAMS).plus(
        _address_params([(primary, True), *((a, False) for a in secondaries)])
    )

    def after(body: bytes) -> bytes:
        state.took(subnet, [primary, *secondaries], prefixes)
        if not prefixes:
            return body
        doc = XmlDoc(body)
        element = doc.find(doc.root, "networkInterface")
        eni_id = doc.text(doc.root, "networkInterface/networkInterfaceId")
        if element is None or eni_id is None:
            return body
        state.set_prefixes(state.eni(eni_id), prefixes)
        doc.set_item_list(element, "ipv4PrefixSet", "ipv4Prefix", prefixes)
        return doc.dump()

    return Forward(rewritten, after)


def _explicit_addresses(
    primary_param: str | None, listed: list[dict[str, str]]
) -> tuple[str | None, list[str]]:
    """(primary, explicit secondaries) from ``PrivateIpAddress`` and ``PrivateIpAddresses.N``."""
    primaries = [e.get("PrivateIpAddress", "") for e in listed if e.get("Primary", "").lower() == "true"]
    if len(primaries) > 1:
        raise invalid_parameter("Only one primary private IP address can be specified.")
    primary = primary_param or (primaries[0] if primaries else None)
    if primary_param and primaries and primaries[0] != primary_param:
        raise invalid_parameter("The primary address in PrivateIpAddresses differs from PrivateIpAddress.")
    secondaries = [e.get("PrivateIpAddress", "") for e in listed if e.get("PrivateIpAddress") != primary]
    if primary is None and secondaries:
        # EC2 makes the first listed address the primary when none is marked.
        primary, secondaries = secondaries[0], secondaries[1:]
    return primary, secondaries


def _address_params(addresses: list[tuple[str, bool]]) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for n, (address, primary) in enumerate(addresses, start=1):
        params.append((f"PrivateIpAddresses.{n}.PrivateIpAddress", address))
        params.append((f"PrivateIpAddresses.{n}.Primary", "true" if primary else "false"))
    return params


def attach_network_interface(ctx: Ec2Context, request: QueryRequest) -> Forward:
    state = ctx.state
    eni = state.eni(request.get("NetworkInterfaceId"))
    instance = state.instance(request.get("InstanceId"))
    device_index = request.get_int("DeviceIndex", -1)
    if device_index < 0:
        raise Ec2ApiError("MissingParameter", "The request must contain the parameter DeviceIndex")
    if request.get_int("NetworkCardIndex", 0) != 0:
        raise Ec2ApiError("Unsupported", "The local cloud emulates network card 0 only.")
    if instance.state not in ("running", "stopped"):
        raise Ec2ApiError(
            "IncorrectInstanceState",
            f"The instance '{instance.id}' is not in a valid state for this operation.",
        )
    if eni.instance is not None:
        raise Ec2ApiError("InvalidNetworkInterface.InUse", f"Interface: [{eni.id}] in use.")
    attached = state.attached_enis(instance)
    if any(e.device_index == device_index for e in attached):
        raise invalid_parameter(
            f"Instance '{instance.id}' already has an interface attached at device index '{device_index}'."
        )
    limits = limits_for(instance.instance_type)
    if limits is not None:
        if len(attached) + 1 > limits.max_enis:
            raise Ec2ApiError(
                "AttachmentLimitExceeded",
                f"Interface count {len(attached) + 1} exceeds the limit for {instance.instance_type}",
            )
        check_slots(state.slots_used(eni), 0, limits.ipv4_per_eni)
    if eni.subnet.availability_zone != instance.placement.zone:
        raise Ec2ApiError(
            "InvalidParameterCombination",
            f"The network interface {eni.id} and instance {instance.id} are not in the same "
            "availability zone.",
        )
    return Forward(request)


def detach_network_interface(ctx: Ec2Context, request: QueryRequest) -> Forward:
    attachment_id = request.get("AttachmentId")
    eni = _eni_by_attachment(ctx, attachment_id)
    if eni.device_index == 0:
        raise Ec2ApiError(
            "OperationNotPermitted", "The network interface at device index 0 cannot be detached."
        )

    def after(body: bytes) -> bytes:
        eni.delete_on_termination = False
        return body

    return Forward(request, after)


def modify_network_interface_attribute(ctx: Ec2Context, request: QueryRequest) -> Forward:
    eni = ctx.state.eni(request.get("NetworkInterfaceId"))
    attachment_id = request.get("Attachment.AttachmentId")
    delete_on_termination = request.get_bool("Attachment.DeleteOnTermination")
    if attachment_id is None and delete_on_termination is None:
        return Forward(request)
    if attachment_id is None or delete_on_termination is None:
        raise Ec2ApiError("MissingParameter", "Attachment needs both AttachmentId and DeleteOnTermination.")
    if eni.attachment_id != attachment_id:
        raise Ec2ApiError(
            "InvalidAttachmentID.NotFound", f"The attachment ID '{attachment_id}' does not exist"
        )

    def after(body: bytes) -> bytes:
        eni.delete_on_termination = delete_on_termination
        return body

    return Forward(request.without("Attachment"), after)


def delete_network_interface(ctx: Ec2Context, request: QueryRequest) -> Forward:
    eni = ctx.state.eni(request.get("NetworkInterfaceId"))
    if eni.instance is not None:
        raise invalid_parameter(f"Network interface '{eni.id}' is currently in use.")
    addresses = ctx.state.addresses(eni)
    prefixes = ctx.state.prefixes(eni)
    subnet = eni.subnet

    def after(body: bytes) -> bytes:
        # A primary that outlived its instance is still booked in moto's subnet; free it there too.
        for address in addresses:
            subnet.del_subnet_ip(address)
        ctx.state.gave_back(subnet, addresses, prefixes)
        return body

    return Forward(request, after)


def _eni_by_attachment(ctx: Ec2Context, attachment_id: str | None) -> Any:
    for eni in ctx.state.enis():
        if attachment_id and eni.attachment_id == attachment_id:
            return eni
    raise Ec2ApiError("InvalidAttachmentID.NotFound", f"The attachment ID '{attachment_id}' does not exist")


HANDLERS: HandlerTable = {
    "CreateNetworkInterface": create_network_interface,
    "AttachNetworkInterface": attach_network_interface,
    "DetachNetworkInterface": detach_network_interface,
    "ModifyNetworkInterfaceAttribute": modify_network_interface_attribute,
    "DeleteNetworkInterface": delete_network_interface,
}
