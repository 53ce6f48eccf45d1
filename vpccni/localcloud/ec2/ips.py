"""Secondary addresses and /28 prefixes on an ENI: AssignPrivateIpAddresses, UnassignPrivateIpAddresses.

Both are served here in full (moto is only the state store): EC2's checks, in the order a user meets
them — the ENI exists, the request is well-formed, the ENI's address slots suffice
(``PrivateIpAddressLimitExceeded``: addresses, primary included, plus prefixes, against the attached
instance type's ``Ipv4AddressesPerInterface``), explicit addresses are free and inside the subnet, and the
subnet has room (``InsufficientFreeAddressesInSubnet`` / ``InsufficientCidrBlocks``). The answer lists only
what this call assigned, as EC2's does.

The address helpers at the bottom are shared with CreateNetworkInterface and RunInstances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vpccni.cloud.addressing import (
    IN_USE,
    MALFORMED,
    OUTSIDE,
    RESERVED,
    NoFreeBlock,
    SubnetExhausted,
    SubnetSpace,
)
from vpccni.localcloud.ec2.handlers import Answer, Ec2Context, HandlerTable
from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest, invalid_parameter, result_body


def assign_private_ip_addresses(ctx: Ec2Context, request: QueryRequest) -> Answer:
    state = ctx.state
    eni = state.eni(request.get("NetworkInterfaceId"))
    explicit = request.get_list("PrivateIpAddress")
    count = request.get_int("SecondaryPrivateIpAddressCount")
    explicit_prefixes = request.get_list("Ipv4Prefix")
    prefix_count = request.get_int("Ipv4PrefixCount")
    if not (explicit or count or explicit_prefixes or prefix_count):
        raise Ec2ApiError(
            "MissingParameter",
            "Specify PrivateIpAddresses, SecondaryPrivateIpAddressCount, Ipv4Prefixes or Ipv4PrefixCount.",
        )
    if explicit and count:
        raise combination("PrivateIpAddresses", "SecondaryPrivateIpAddressCount")
    if explicit_prefixes and prefix_count:
        raise combination("Ipv4Prefixes", "Ipv4PrefixCount")
    check_slots(
        state.slots_used(eni),
        len(explicit) + count + len(explicit_prefixes) + prefix_count,
        state.slot_limit(eni),
    )

    space = state.space(eni.subnet)
    reassign = bool(request.get_bool("AllowReassignment"))
    if reassign:
        _check_reassignable(ctx, eni, explicit)
        space = space.minus(explicit)
    check_addresses(space, explicit, in_use_code="PrivateIpAddressInUse")
    new_ips = [*explicit, *choose_addresses(ctx, space.plus(explicit), count)]
    space = space.plus(new_ips)
    check_prefixes(space, explicit_prefixes)
    new_prefixes = [
        *explicit_prefixes,
        *choose_prefixes(ctx, space.plus(prefixes=explicit_prefixes), prefix_count),
    ]

    if reassign:
        _take_back(ctx, eni, explicit)
    eni.private_ip_addresses.extend({"Primary": False, "PrivateIpAddress": ip} for ip in new_ips)
    state.set_prefixes(eni, [*state.prefixes(eni), *new_prefixes])
    state.took(eni.subnet, new_ips, new_prefixes)
    fields: list[tuple[str, Any]] = [
        ("networkInterfaceId", eni.id),
        ("assignedPrivateIpAddressesSet", [("privateIpAddress", new_ips)]),
    ]
    if new_prefixes:
        fields.append(("assignedIpv4PrefixSet", [("ipv4Prefix", new_prefixes)]))
    return Answer(result_body("AssignPrivateIpAddresses", fields))


def unassign_private_ip_addresses(ctx: Ec2Context, request: QueryRequest) -> Answer:
    state = ctx.state
    eni = state.eni(request.get("NetworkInterfaceId"))
    addresses = request.get_list("PrivateIpAddress")
    prefixes = request.get_list("Ipv4Prefix")
    if not addresses and not prefixes:
        raise Ec2ApiError("MissingParameter", "Specify PrivateIpAddresses or Ipv4Prefixes.")
    held = state.addresses(eni)
    for address in addresses:
        if address == eni.private_ip_address:
            raise invalid_parameter(f"The primary IP address {address} of an interface cannot be unassigned.")
        if address not in held:
            raise invalid_parameter(f"Some of the specified addresses are not assigned to interface {eni.id}")
    held_prefixes = state.prefixes(eni)
    for prefix in prefixes:
        if prefix not in held_prefixes:
            raise invalid_parameter(f"Some of the specified prefixes are not assigned to interface {eni.id}")
    eni.private_ip_addresses[:] = [
        a for a in eni.private_ip_addresses if a["PrivateIpAddress"] not in addresses
    ]
    state.set_prefixes(eni, [p for p in held_prefixes if p not in prefixes])
    state.gave_back(eni.subnet, addresses, prefixes)
    return Answer(result_body("UnassignPrivateIpAddresses", [("return", "true")]))


def _check_reassignable(ctx: Ec2Context, eni: Any, addresses: Sequence[str]) -> None:
    """AllowReassignment moves secondaries, never another ENI's primary address or its prefixes."""
    for other in ctx.state.enis():
        if other is eni or other.subnet.id != eni.subnet.id:
            continue
        for address in addresses:
            if address == other.private_ip_address:
                raise invalid_parameter(f"Address {address} is the primary address of {other.id}")


def _take_back(ctx: Ec2Context, eni: Any, addresses: Sequence[str]) -> None:
    """AllowReassignment: remove the addresses from whichever other ENI of the subnet holds them."""
    for other in ctx.state.enis():
        if other is eni or other.subnet.id != eni.subnet.id:
            continue
        other.private_ip_addresses[:] = [
            a for a in other.private_ip_addresses if a["PrivateIpAddress"] not in addresses
        ]


HANDLERS: HandlerTable = {
    "AssignPrivateIpAddresses": assign_private_ip_addresses,
    "UnassignPrivateIpAddresses": unassign_private_ip_addresses,
}


# --- shared address rules ---------------------------------------------------------------------------


def combination(first: str, second: str) -> Ec2ApiError:
    return Ec2ApiError("InvalidParameterCombination", f"{first} and {second} cannot be specified together.")


def check_slots(used: int, adding: int, limit: int) -> None:
    if used + adding > limit:
        raise Ec2ApiError("PrivateIpAddressLimitExceeded", "Number of private addresses will exceed limit.")


def check_addresses(space: SubnetSpace, addresses: Sequence[str], *, in_use_code: str) -> None:
    """Explicit addresses must be well-formed, in the subnet, not reserved, free and not repeated."""
    if len(set(addresses)) != len(addresses):
        raise invalid_parameter("The same address is specified more than once.")
    for address in addresses:
        problem = space.address_problem(address)
        if problem == MALFORMED:
            raise invalid_parameter(f"Invalid private IPv4 address '{address}'")
        if problem == OUTSIDE:
            raise invalid_parameter(f"Address {address} does not fall within the subnet's address range")
        if problem == RESERVED:
            raise invalid_parameter(f"Address {address} is in subnet's reserved address range")
        if problem == IN_USE:
            raise Ec2ApiError(in_use_code, f"Address {address} is in use.")


def check_prefixes(space: SubnetSpace, prefixes: Sequence[str]) -> None:
    if len(set(prefixes)) != len(prefixes):
        raise invalid_parameter("The same prefix is specified more than once.")
    for prefix in prefixes:
        problem = space.prefix_problem(prefix)
        if problem == MALFORMED:
            raise invalid_parameter(f"Invalid IPv4 prefix '{prefix}': expected an aligned /28")
        if problem == OUTSIDE:
            raise invalid_parameter(f"Prefix {prefix} does not fall within the subnet's address range")
        if problem == RESERVED:
            raise invalid_parameter(f"Prefix {prefix} overlaps the subnet's reserved addresses")
        if problem == IN_USE:
            raise invalid_parameter(f"Prefix {prefix} overlaps addresses or prefixes in use")


def choose_addresses(ctx: Ec2Context, space: SubnetSpace, count: int) -> list[str]:
    try:
        return space.choose_addresses(count, ctx.rng)
    except SubnetExhausted:
        raise Ec2ApiError(
            "InsufficientFreeAddressesInSubnet",
            "The specified subnet does not have enough free addresses to satisfy the request.",
        ) from None


def choose_prefixes(ctx: Ec2Context, space: SubnetSpace, count: int) -> list[str]:
    try:
        return space.choose_prefixes(count, ctx.rng)
    except NoFreeBlock:
        raise Ec2ApiError(
            "InsufficientCidrBlocks",
            "The specified subnet does not have enough free cidr blocks to satisfy the request.",
        ) from None
