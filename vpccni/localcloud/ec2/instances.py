"""Instances as EC2 runs them: known types only, unique primary addresses, DeleteOnTermination honoured.

- RunInstances refuses an instance type the limits table does not know (``InvalidParameterValue``;
  moto launches anything), picks each primary address itself (unique, never reserved;
  ``InsufficientFreeAddressesInSubnet`` when fewer than MinCount fit) and marks the primary ENI
  DeleteOnTermination=true unless the request says otherwise — as EC2 does, unlike moto.
- TerminateInstances: moto deletes the DeleteOnTermination ENIs; every other ENI is detached to
  ``available`` here (moto leaves it attached to the dead instance).

Launch forms the local cloud does not emulate (several network interfaces, secondary addresses or
prefixes at launch, attaching an existing ENI at launch) are refused with ``Unsupported`` naming the
parameter, rather than silently half-done.
"""

from __future__ import annotations

from vpccni.localcloud.ec2.handlers import Ec2Context, Forward, HandlerTable
from vpccni.localcloud.ec2.ips import check_addresses, choose_addresses
from vpccni.localcloud.ec2.query import Ec2ApiError, QueryRequest, XmlDoc, invalid_parameter
from vpccni.localcloud.ec2.state import Ec2State, limits_for

_UNSUPPORTED_NIC_MEMBERS = (
    "SecondaryPrivateIpAddressCount",
    "PrivateIpAddresses",
    "Ipv4Prefix",
    "Ipv4PrefixCount",
    "NetworkInterfaceId",
)


def run_instances(ctx: Ec2Context, request: QueryRequest) -> Forward:
    state = ctx.state
    instance_type = request.get("InstanceType")
    if instance_type is not None and limits_for(instance_type) is None:
        raise invalid_parameter(f"Invalid value '{instance_type}' for InstanceType.")
    nics = request.get_struct_list("NetworkInterface")
    if len(nics) > 1:
        raise _unsupported("more than one NetworkInterface at launch")
    nic = nics[0] if nics else {}
    for member in nic:
        if member.split(".", 1)[0] in _UNSUPPORTED_NIC_MEMBERS:
            raise _unsupported(f"NetworkInterface.1.{member} at launch")
    if nic and nic.get("DeviceIndex", "0") != "0":
        raise _unsupported("a launch NetworkInterface other than device index 0")

    min_count = request.get_int("MinCount", 1)
    max_count = request.get_int("MaxCount", min_count)
    if min_count < 1 or max_count < min_count:
        raise invalid_parameter(f"MinCount ({min_count}) must be >= 1 and <= MaxCount ({max_count}).")
    subnet_id = request.get("SubnetId") or nic.get("SubnetId")
    rewritten = request
    if not subnet_id:
        subnet_id = _default_subnet_id(state, request.get("Placement.AvailabilityZone"))
        rewritten = rewritten.plus(
            [("NetworkInterface.1.SubnetId", subnet_id)] if nic else [("SubnetId", subnet_id)]
        )
    subnet = state.subnet(subnet_id)
    space = state.space(subnet)

    explicit = request.get("PrivateIpAddress") or nic.get("PrivateIpAddress")
    if explicit:
        if max_count > 1:
            raise invalid_parameter("A private IP address can be specified only when launching one instance.")
        check_addresses(space, [explicit], in_use_code="InvalidIPAddress.InUse")
        addresses = [explicit]
    else:
        if space.free_count() < min_count:
            choose_addresses(ctx, space, min_count)  # raises InsufficientFreeAddressesInSubnet
        addresses = choose_addresses(ctx, space, min(max_count, space.free_count()))
    rewritten = rewritten.without(
        "MinCount", "MaxCount", "PrivateIpAddress", "NetworkInterface.1.PrivateIpAddress"
    )
    rewritten = rewritten.plus([("MinCount", str(len(addresses))), ("MaxCount", str(len(addresses)))])
    if len(addresses) == 1:
        key = "NetworkInterface.1.PrivateIpAddress" if nic else "PrivateIpAddress"
        rewritten = rewritten.plus([(key, addresses[0])])
    else:
        # moto books instance primaries from its subnet's free list before its own counter: hand it ours.
        subnet._unused_ips = set(addresses)
    delete_on_termination = nic.get("DeleteOnTermination", "true").lower() == "true"

    def after(body: bytes) -> bytes:
        doc = XmlDoc(body)
        for item in doc.findall(doc.root, "instancesSet/item"):
            instance = state.instance(doc.text(item, "instanceId"))
            primary = instance.nics.get(0)
            if primary is not None:
                primary.delete_on_termination = delete_on_termination
            for attachment in doc.findall(item, "networkInterfaceSet/item/attachment"):
                if doc.text(attachment, "deviceIndex") == "0":
                    doc.set_text(attachment, "deleteOnTermination", str(delete_on_termination).lower())
        return doc.dump()

    return Forward(rewritten, after)


def terminate_instances(ctx: Ec2Context, request: QueryRequest) -> Forward:
    state = ctx.state
    instances = [state.instance(i) for i in request.get_list("InstanceId")]

    def after(body: bytes) -> bytes:
        enis = state.backend.enis
        for instance in instances:
            for index, nic in list(instance.nics.items()):
                if nic.id in enis and nic.instance is instance:
                    nic.instance = None
                    nic.attachment_id = None
                    nic.attach_time = None
                    nic.status = "available"
                    nic.device_index = None
                    nic.delete_on_termination = False
                elif nic.id not in enis:
                    # Already deleted: never delete it twice if the instance is terminated again.
                    nic.delete_on_termination = False
                if index != 0:
                    # moto's instance needs its device-0 entry to describe itself; the rest go.
                    del instance.nics[index]
        return body

    return Forward(request, after)


def _default_subnet_id(state: Ec2State, zone: str | None) -> str:
    zone = zone or f"{state.region}a"
    subnet = state.backend.get_default_subnets().get(zone)
    if subnet is None:
        raise Ec2ApiError(
            "MissingInput", f"No default subnet for availability zone: '{zone}'. Specify SubnetId."
        )
    return str(subnet.id)


def _unsupported(what: str) -> Ec2ApiError:
    return Ec2ApiError("Unsupported", f"The local cloud does not emulate {what}.")


HANDLERS: HandlerTable = {
    "RunInstances": run_instances,
    "TerminateInstances": terminate_instances,
}
