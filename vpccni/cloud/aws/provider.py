"""The AWS implementation of :class:`~vpccni.cloud.base.CloudProvider` over boto3.

Every request goes through one :class:`~vpccni.cloud.retry.CallRunner` (API budget, timing, error
mapping, retries). What each mutation does about an ambiguous outcome (a timeout or 5xx after EC2 may
have acted) so that retrying stays safe:

* CreateNetworkInterface carries a ``ClientToken`` made once per logical call and reused by every
  retry, so EC2 returns the interface the lost attempt created instead of creating a second one.
* AttachNetworkInterface: if a retry is refused permanently, the interface is described; attached to
  this instance at this index means the lost attempt succeeded, and its attachment id is returned.
* Detach/Delete: "not found" means already done; both return False then (idempotent). A detach
  retry refused otherwise (e.g. already detaching) is checked by describing the attachment.
* Unassign: if a retry is refused permanently, the interface is described; none of the addresses
  (prefixes) left means done.
* Assign: EC2 has no idempotency token here. A retry after a lost attempt may leave the interface with
  more addresses than the caller saw returned; callers resync by describing the interface and taking
  what is there (the reconciler does this periodically: EC2 is the truth).
* ModifyNetworkInterfaceAttribute and CreateTags are idempotent by nature.

Describes use filters rather than id lists where an unknown id would fail the whole call, and follow
``NextToken`` pages; each page is one budgeted, observed request.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vpccni.cloud.aws.client import AwsSettings, make_ec2_client
from vpccni.cloud.aws.errors import map_error
from vpccni.cloud.aws.parse import parse_instance, parse_interface, parse_subnet
from vpccni.cloud.base import CloudProvider, InstanceInfo, NetworkInterface, Subnet, check_create_counts
from vpccni.cloud.budget import ApiBudget
from vpccni.cloud.observe import CallObserver, InFlightCalls
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.errors import CloudError, CloudInvalidRequest, CloudNotFound, UnknownInstanceType

_PAGE_SIZE = 1000  # EC2's maximum MaxResults for DescribeNetworkInterfaces / DescribeSubnets
_FILTER_VALUES_MAX = 200  # EC2 caps the values of one filter


def _filters(values: Mapping[str, Sequence[str] | str | None]) -> list[dict[str, Any]]:
    """EC2 ``Filters`` from ``{filter name: value(s)}``, skipping None."""
    out = []
    for name, value in values.items():
        if value is None:
            continue
        out.append({"Name": name, "Values": [value] if isinstance(value, str) else list(value)})
    return out


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _check_count(name: str, count: int) -> None:
    if count < 1:
        raise ValueError(f"{name} must be >= 1, got {count}")


def aws_runner(**kwargs: Any) -> CallRunner:
    """A :class:`CallRunner` that maps botocore's exceptions (every AWS request goes through one)."""
    return CallRunner(map_error=map_error, **kwargs)


class AwsProvider:
    """EC2 behind the :class:`~vpccni.cloud.base.CloudProvider` interface. Thread-safe."""

    can_attach_interfaces = True
    """ENIs are created, attached, detached and deleted while the instance runs."""
    supports_prefixes = True
    """/28 prefixes can be delegated to ENIs (of Nitro instances)."""
    address_writes_are_batched = False
    """Each Assign/Unassign call is one write whatever its count, but aws-node's targets ask for what is
    short; batching is VPCCNI_IP_BATCH's choice, not the API's."""

    def __init__(
        self,
        client: Any,
        runner: CallRunner | None = None,
        *,
        client_token: Callable[[], str] = lambda: str(uuid.uuid4()),
        page_size: int = _PAGE_SIZE,
    ) -> None:
        if not 5 <= page_size <= _PAGE_SIZE:
            raise ValueError(f"page_size must be 5..{_PAGE_SIZE} (EC2's MaxResults range), got {page_size}")
        self._ec2 = client
        self.runner = runner or aws_runner()
        self._client_token = client_token
        self._page_size = page_size

    @classmethod
    def from_settings(
        cls,
        settings: AwsSettings,
        *,
        retry: RetrySettings | None = None,
        budget: ApiBudget | None = None,
        observer: CallObserver | None = None,
        in_flight: InFlightCalls | None = None,
    ) -> AwsProvider:
        return cls(make_ec2_client(settings),
                   aws_runner(retry=retry, budget=budget, observer=observer, in_flight=in_flight))

    # --- the instance ----------------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> InstanceInfo:
        resp = self.runner.run(
            "DescribeInstances", lambda: self._ec2.describe_instances(InstanceIds=[instance_id])
        )
        instances = [i for r in resp.get("Reservations", ()) for i in r.get("Instances", ())]
        if not instances:
            raise CloudNotFound(
                "DescribeInstances", "InvalidInstanceID.NotFound", f"no instance {instance_id}"
            )
        return parse_instance(instances[0])

    def describe_instance_type(self, instance_type: str) -> Mapping[str, object]:
        action = "DescribeInstanceTypes"
        try:
            resp = self.runner.run(
                action, lambda: self._ec2.describe_instance_types(InstanceTypes=[instance_type])
            )
        except CloudInvalidRequest as err:
            if err.code in ("InvalidInstanceType", "InvalidParameterValue"):
                raise UnknownInstanceType(instance_type) from err
            raise
        found = resp.get("InstanceTypes", [])
        if not found:
            raise UnknownInstanceType(instance_type)
        return dict(found[0])

    # --- network interfaces ----------------------------------------------------------------------

    def _pages(self, action: str, method: Callable[..., Any], items: str, **kwargs: Any) -> Iterator[Any]:
        """Every item under ``items`` across the ``NextToken`` pages of ``action``."""
        token: str | None = None
        while True:
            page_args = {**kwargs, "NextToken": token} if token else kwargs
            resp = self.runner.run(action, functools.partial(method, **page_args))
            yield from resp.get(items, ())
            token = resp.get("NextToken")
            if not token:
                return

    def _describe_interfaces(self, filters: list[dict[str, Any]]) -> Iterator[NetworkInterface]:
        pages = self._pages(
            "DescribeNetworkInterfaces",
            self._ec2.describe_network_interfaces,
            "NetworkInterfaces",
            Filters=filters,
            MaxResults=self._page_size,
        )
        return (parse_interface(raw) for raw in pages)

    def describe_instance_interfaces(self, instance_id: str) -> list[NetworkInterface]:
        found = self._describe_interfaces(_filters({"attachment.instance-id": instance_id}))
        return sorted(
            found, key=lambda i: (i.attachment.network_card_index if i.attachment else 0, i.device_index or 0)
        )

    def describe_interfaces(self, interface_ids: Sequence[str]) -> list[NetworkInterface]:
        ids = list(dict.fromkeys(interface_ids))
        out: list[NetworkInterface] = []
        for start in range(0, len(ids), _FILTER_VALUES_MAX):
            chunk = ids[start : start + _FILTER_VALUES_MAX]
            out.extend(self._describe_interfaces(_filters({"network-interface-id": chunk})))
        order = {iid: n for n, iid in enumerate(ids)}
        return sorted(out, key=lambda i: order.get(i.interface_id, len(order)))

    def describe_leaked_interfaces(
        self, *, vpc_id: str, owner_tag_key: str, required_tags: Mapping[str, str] | None = None
    ) -> list[NetworkInterface]:
        filters = _filters({"tag-key": owner_tag_key, "status": "available", "vpc-id": vpc_id})
        filters += [{"Name": f"tag:{k}", "Values": [v]} for k, v in (required_tags or {}).items()]
        return list(self._describe_interfaces(filters))

    def create_interface(
        self,
        *,
        subnet_id: str,
        security_group_ids: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        secondary_address_count: int = 0,
        prefix_count: int = 0,
    ) -> NetworkInterface:
        check_create_counts(secondary_address_count, prefix_count)
        kwargs: dict[str, Any] = {
            "SubnetId": subnet_id,
            "Groups": list(security_group_ids),
            "Description": description,
            "ClientToken": self._client_token(),  # one per logical call: retries are idempotent
        }
        if tags:
            kwargs["TagSpecifications"] = [{"ResourceType": "network-interface", "Tags": _tag_list(tags)}]
        if secondary_address_count:
            kwargs["SecondaryPrivateIpAddressCount"] = secondary_address_count
        if prefix_count:
            kwargs["Ipv4PrefixCount"] = prefix_count
        resp = self.runner.run("CreateNetworkInterface", lambda: self._ec2.create_network_interface(**kwargs))
        return parse_interface(resp["NetworkInterface"])

    def attach_interface(
        self, interface_id: str, instance_id: str, device_index: int, network_card_index: int = 0
    ) -> str:
        kwargs: dict[str, Any] = {
            "NetworkInterfaceId": interface_id,
            "InstanceId": instance_id,
            "DeviceIndex": device_index,
        }
        if network_card_index:
            kwargs["NetworkCardIndex"] = network_card_index

        def already_attached(_: CloudError) -> str | None:
            for eni in self.describe_interfaces([interface_id]):
                a = eni.attachment
                if a and a.instance_id == instance_id and a.device_index == device_index:
                    return a.attachment_id
            return None

        return self.runner.run(
            "AttachNetworkInterface",
            lambda: str(self._ec2.attach_network_interface(**kwargs)["AttachmentId"]),
            resync=already_attached,
        )

    def set_delete_on_termination(self, interface_id: str, attachment_id: str, enabled: bool = True) -> None:
        self.runner.run(
            "ModifyNetworkInterfaceAttribute",
            lambda: self._ec2.modify_network_interface_attribute(
                NetworkInterfaceId=interface_id,
                Attachment={"AttachmentId": attachment_id, "DeleteOnTermination": enabled},
            ),
        )

    def detach_interface(self, attachment_id: str, *, force: bool = False) -> bool:
        def already_detaching(_: CloudError) -> bool | None:
            filters = _filters({"attachment.attachment-id": attachment_id})
            for eni in self._describe_interfaces(filters):
                a = eni.attachment
                if a and a.attachment_id == attachment_id and a.status not in ("detaching", "detached"):
                    return None
            return True

        try:
            self.runner.run(
                "DetachNetworkInterface",
                lambda: bool(
                    self._ec2.detach_network_interface(AttachmentId=attachment_id, Force=force) or True
                ),
                resync=already_detaching,
            )
        except CloudNotFound:
            return False
        return True

    def delete_interface(self, interface_id: str) -> bool:
        try:
            self.runner.run(
                "DeleteNetworkInterface",
                lambda: self._ec2.delete_network_interface(NetworkInterfaceId=interface_id),
            )
        except CloudNotFound:
            return False
        return True

    # --- secondary addresses and prefixes --------------------------------------------------------

    def assign_addresses(self, interface_id: str, count: int) -> list[str]:
        _check_count("count", count)
        resp = self.runner.run(
            "AssignPrivateIpAddresses",
            lambda: self._ec2.assign_private_ip_addresses(
                NetworkInterfaceId=interface_id, SecondaryPrivateIpAddressCount=count
            ),
        )
        return [str(a["PrivateIpAddress"]) for a in resp.get("AssignedPrivateIpAddresses", ())]

    def assign_prefixes(self, interface_id: str, count: int) -> list[str]:
        _check_count("count", count)
        resp = self.runner.run(
            "AssignPrivateIpAddresses",
            lambda: self._ec2.assign_private_ip_addresses(
                NetworkInterfaceId=interface_id, Ipv4PrefixCount=count
            ),
        )
        return [str(p["Ipv4Prefix"]) for p in resp.get("AssignedIpv4Prefixes", ())]

    def _unassign(self, interface_id: str, field: str, values: Sequence[str]) -> None:
        wanted = list(values)
        if not wanted:
            return

        def already_gone(_: CloudError) -> bool | None:
            for eni in self.describe_interfaces([interface_id]):
                present = set(eni.secondary_addresses if field == "PrivateIpAddresses" else eni.prefixes)
                return True if present.isdisjoint(wanted) else None
            return None

        self.runner.run(
            "UnassignPrivateIpAddresses",
            lambda: bool(
                self._ec2.unassign_private_ip_addresses(NetworkInterfaceId=interface_id, **{field: wanted})
            ),
            resync=already_gone,
        )

    def unassign_addresses(self, interface_id: str, addresses: Sequence[str]) -> None:
        self._unassign(interface_id, "PrivateIpAddresses", addresses)

    def unassign_prefixes(self, interface_id: str, prefixes: Sequence[str]) -> None:
        self._unassign(interface_id, "Ipv4Prefixes", prefixes)

    # --- tags and subnets ------------------------------------------------------------------------

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if not resource_ids or not tags:
            return
        self.runner.run(
            "CreateTags", lambda: self._ec2.create_tags(Resources=list(resource_ids), Tags=_tag_list(tags))
        )

    def describe_subnets(
        self,
        *,
        vpc_id: str | None = None,
        availability_zone: str | None = None,
        subnet_ids: Sequence[str] | None = None,
    ) -> list[Subnet]:
        filters = _filters(
            {"vpc-id": vpc_id, "availability-zone": availability_zone, "subnet-id": subnet_ids}
        )
        pages = self._pages(
            "DescribeSubnets",
            self._ec2.describe_subnets,
            "Subnets",
            Filters=filters,
            MaxResults=self._page_size,
        )
        found = [parse_subnet(raw) for raw in pages]
        return sorted(found, key=lambda s: (-s.available_address_count, s.subnet_id))


if TYPE_CHECKING:
    # mypy proves here that AwsProvider implements the whole CloudProvider protocol.
    def _implements_protocol(provider: AwsProvider) -> CloudProvider:
        return provider
