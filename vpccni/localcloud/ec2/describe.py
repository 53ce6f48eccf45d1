"""Describe calls moto answers wrongly: ENI filters, a subnet's free-address count, dead instances.

DescribeNetworkInterfaces: moto matches ``private-ip-address`` / ``addresses.private-ip-address``
against the primary address only, and does not implement ``attachment.status``,
``attachment.device-index`` or ``attachment.delete-on-termination``. These filters are evaluated here
against the state; the request goes on to moto with them replaced by one ``network-interface-id``
filter listing the ENIs that passed, so moto still applies the other filters, ids and pagination.
Values match with EC2's wildcards (``*``, ``?``).

DescribeSubnets: ``AvailableIpAddressCount`` is recomputed from what is really taken, so a delegated
/28 counts as its 16 addresses.

DescribeInstances: a terminated instance lists no network interfaces, as on EC2.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from vpccni.localcloud.ec2.handlers import Ec2Context, Forward, HandlerTable
from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest, XmlDoc
from vpccni.localcloud.ec2.state import Ec2State

_NO_MATCH = "eni-00000000000000000"


def _filter_values(state: Ec2State, eni: Any, name: str) -> list[str]:
    attached = eni.instance is not None
    if name in ("private-ip-address", "addresses.private-ip-address"):
        return state.addresses(eni)
    if name == "attachment.status":
        return ["attached"] if attached else []
    if name == "attachment.device-index":
        return [str(eni.device_index)] if attached else []
    if name == "attachment.delete-on-termination":
        return [str(bool(eni.delete_on_termination)).lower()] if attached else []
    raise KeyError(name)


OUR_ENI_FILTERS = frozenset(
    {
        "private-ip-address",
        "addresses.private-ip-address",
        "attachment.status",
        "attachment.device-index",
        "attachment.delete-on-termination",
    }
)


def describe_network_interfaces(ctx: Ec2Context, request: QueryRequest) -> Forward:
    filters = request.filters()
    ours = [(name, values) for name, values in filters if name in OUR_ENI_FILTERS]
    if not ours:
        return Forward(_by_instance(ctx, request, filters))
    state = ctx.state
    matching = sorted(
        eni.id
        for eni in state.enis()
        if all(
            any(
                fnmatchcase(value, pattern)
                for value in _filter_values(state, eni, name)
                for pattern in patterns
            )
            for name, patterns in ours
        )
    )
    rest: list[tuple[str, list[str]]] = [(n, v) for n, v in filters if n not in OUR_ENI_FILTERS]
    rest.append(("network-interface-id", matching or [_NO_MATCH]))
    return Forward(request.with_filters(rest))


def _by_instance(ctx: Ec2Context, request: QueryRequest,
                 filters: list[tuple[str, list[str]]]) -> QueryRequest:
    """``attachment.instance-id`` with exact ids, asked as the ids of the ENIs attached to them.

    moto evaluates a filter against every ENI of the account; the ENIs attached to an instance are known
    from the instance, so the same answer comes from moto's id list (a membership test per ENI). Left as
    asked when the request names ENI ids itself, uses a wildcard, or no ENI is attached (moto refuses an
    empty or unknown id list; the filter answers nothing)."""
    wanted = [values for name, values in filters if name == "attachment.instance-id"]
    if len(wanted) != 1 or request.get_list("NetworkInterfaceId") or \
            any("*" in v or "?" in v for v in wanted[0]):
        return request
    state = ctx.state
    ids: list[str] = []
    for instance_id in wanted[0]:
        try:
            instance = state.instance(instance_id)
        except Ec2ApiError:
            continue  # unknown: it has no ENI to match
        ids += [eni.id for eni in state.attached_enis(instance)]
    if not ids:
        return request
    rest = [(name, values) for name, values in filters if name != "attachment.instance-id"]
    narrowed = request.with_filters(rest)
    return narrowed.plus((f"NetworkInterfaceId.{n}", eni_id) for n, eni_id in enumerate(ids, start=1))


def describe_subnets(ctx: Ec2Context, request: QueryRequest) -> Forward:
    state = ctx.state

    def after(body: bytes) -> bytes:
        doc = XmlDoc(body)
        for item in doc.findall(doc.root, "subnetSet/item"):
            subnet_id = doc.text(item, "subnetId")
            cidr = doc.text(item, "cidrBlock")
            if subnet_id is None or cidr is None:
                continue  # an IPv6-only subnet: no IPv4 count to fix
            free = state.space(state.subnet(subnet_id)).free_count()
            doc.set_text(item, "availableIpAddressCount", str(free))
        return doc.dump()

    return Forward(request, after)


def describe_instances(ctx: Ec2Context, request: QueryRequest) -> Forward:
    """A terminated instance has no network interfaces left (moto keeps listing its primary)."""

    def after(body: bytes) -> bytes:
        doc = XmlDoc(body)
        changed = False
        for item in doc.findall(doc.root, "reservationSet/item/instancesSet/item"):
            interfaces = doc.find(item, "networkInterfaceSet")
            if doc.text(item, "instanceState/name") == "terminated" and interfaces is not None:
                item.remove(interfaces)
                changed = True
        return doc.dump() if changed else body

    return Forward(request, after)


HANDLERS: HandlerTable = {
    "DescribeNetworkInterfaces": describe_network_interfaces,
    "DescribeSubnets": describe_subnets,
    "DescribeInstances": describe_instances,
}
