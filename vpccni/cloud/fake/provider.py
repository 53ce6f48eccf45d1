"""FakeProvider: :class:`~vpccni.cloud.base.CloudProvider` over a :class:`~vpccni.cloud.fake.cloud.FakeCloud`.

Each method is one EC2 request, named as the AWS provider names it (``AssignPrivateIpAddresses`` for
addresses and prefixes alike, ``ModifyNetworkInterfaceAttribute`` for DeleteOnTermination), so the call
log and fault injection speak EC2's action names. Answers are the fake's EC2 error codes mapped by
:func:`map_error` through the same table the AWS provider uses (:mod:`vpccni.cloud.aws.codes`): the same
code gives the same exception class, and "not found" makes detach and delete return False.

What the AWS provider checks before sending (a count below 1, addresses and prefixes together) raises
the same ValueError here, before any request. One request per call: no pages (the AWS provider's
describes may take several).

By default a refused request raises at once, as the AWS provider does once its retries are spent. With
``runner`` (e.g. ``CallRunner(map_error=map_error, clock=..., sleep=...)`` from :mod:`vpccni.cloud.retry`)
every request goes through it instead: budget, observer and retries on an injectable clock, so retry and
throttle behaviour can be tested without waiting. The fake itself imports nothing outside the standard
library and vpccni's own stdlib-only modules.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TypeVar

from vpccni.cloud.aws.codes import error_class_for
from vpccni.cloud.base import CloudProvider, InstanceInfo, NetworkInterface, Subnet, check_create_counts
from vpccni.cloud.fake import ec2
from vpccni.cloud.fake.cloud import FakeCloud
from vpccni.cloud.fake.state import Ec2Error
from vpccni.errors import CloudInvalidRequest, CloudNotFound, UnknownInstanceType

T = TypeVar("T")


class Runner(Protocol):
    """What the provider needs of :class:`vpccni.cloud.retry.CallRunner` (not imported: it needs tenacity)."""

    def run(self, action: str, request: Callable[[], T]) -> T: ...


def map_error(action: str, exc: Exception) -> Exception:
    """The fake's EC2 answer as vpccni's cloud error (the AWS provider's table); anything else unchanged."""
    if not isinstance(exc, Ec2Error):
        return exc
    mapped = error_class_for(exc.code, exc.status)(action, exc.code, exc.message)
    mapped.__cause__ = exc
    return mapped


def _check_count(name: str, count: int) -> None:
    if count < 1:
        raise ValueError(f"{name} must be >= 1, got {count}")


class FakeProvider:
    """The fake EC2 behind the CloudProvider interface. Thread-safe (the cloud holds one lock)."""

    # EC2's capabilities, as the AWS provider states them.
    can_attach_interfaces = True
    supports_prefixes = True
    address_writes_are_batched = False

    def __init__(self, cloud: FakeCloud, *, runner: Runner | None = None) -> None:
        self.cloud = cloud
        self.runner = runner

    def _send(self, action: str, act: Callable[[], T]) -> T:
        request = functools.partial(self.cloud.request, action, act)
        if self.runner is not None:
            return self.runner.run(action, request)
        try:
            return request()
        except Ec2Error as exc:
            raise map_error(action, exc) from exc

    # --- the instance ----------------------------------------------------------------------------------

    def describe_instance(self, instance_id: str) -> InstanceInfo:
        found = self._send("DescribeInstances", lambda: ec2.describe_instance(self.cloud, instance_id))
        if found is None:
            # EC2 answered (a terminated instance lists no interfaces), but the AWS provider's parser needs a
            # device-0 interface and raises this; the fake does the same, so callers see one behaviour.
            raise CloudInvalidRequest("Instance", "MalformedResponse",
                                      f"instance {instance_id} has no device-index-0 interface")
        return found

    def describe_instance_type(self, instance_type: str) -> Mapping[str, object]:
        try:
            return self._send("DescribeInstanceTypes",
                              lambda: ec2.describe_instance_type(self.cloud, instance_type))
        except CloudInvalidRequest as err:
            if err.code in ("InvalidInstanceType", "InvalidParameterValue"):
                raise UnknownInstanceType(instance_type) from err
            raise

    # --- network interfaces ----------------------------------------------------------------------------

    def describe_instance_interfaces(self, instance_id: str) -> list[NetworkInterface]:
        return self._send("DescribeNetworkInterfaces",
                          lambda: ec2.describe_instance_interfaces(self.cloud, instance_id))

    def describe_interfaces(self, interface_ids: Sequence[str]) -> list[NetworkInterface]:
        if not interface_ids:  # the AWS provider sends nothing then either
            return []
        return self._send("DescribeNetworkInterfaces",
                          lambda: ec2.describe_interfaces(self.cloud, interface_ids))

    def describe_leaked_interfaces(
        self, *, vpc_id: str, owner_tag_key: str, required_tags: Mapping[str, str] | None = None
    ) -> list[NetworkInterface]:
        return self._send("DescribeNetworkInterfaces", lambda: ec2.describe_leaked_interfaces(
            self.cloud, vpc_id, owner_tag_key, required_tags or {}))

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
        return self._send("CreateNetworkInterface", lambda: ec2.create_interface(
            self.cloud, subnet_id=subnet_id, group_ids=security_group_ids, description=description,
            tags=tags, address_count=secondary_address_count, prefix_count=prefix_count))

    def attach_interface(
        self, interface_id: str, instance_id: str, device_index: int, network_card_index: int = 0
    ) -> str:
        return self._send("AttachNetworkInterface", lambda: ec2.attach_interface(
            self.cloud, interface_id, instance_id, device_index, network_card_index))

    def set_delete_on_termination(self, interface_id: str, attachment_id: str, enabled: bool = True) -> None:
        self._send("ModifyNetworkInterfaceAttribute", lambda: ec2.set_delete_on_termination(
            self.cloud, interface_id, attachment_id, enabled))

    def detach_interface(self, attachment_id: str, *, force: bool = False) -> bool:
        try:
            self._send("DetachNetworkInterface", lambda: ec2.detach_interface(self.cloud, attachment_id))
        except CloudNotFound:
            return False
        return True

    def delete_interface(self, interface_id: str) -> bool:
        try:
            self._send("DeleteNetworkInterface", lambda: ec2.delete_interface(self.cloud, interface_id))
        except CloudNotFound:
            return False
        return True

    # --- secondary addresses and prefixes --------------------------------------------------------------

    def assign_addresses(self, interface_id: str, count: int) -> list[str]:
        _check_count("count", count)
        return self._send("AssignPrivateIpAddresses",
                          lambda: ec2.assign_addresses(self.cloud, interface_id, count))

    def assign_prefixes(self, interface_id: str, count: int) -> list[str]:
        _check_count("count", count)
        return self._send("AssignPrivateIpAddresses",
                          lambda: ec2.assign_prefixes(self.cloud, interface_id, count))

    def unassign_addresses(self, interface_id: str, addresses: Sequence[str]) -> None:
        if addresses:
            self._send("UnassignPrivateIpAddresses",
                       lambda: ec2.unassign(self.cloud, interface_id, list(addresses), ()))

    def unassign_prefixes(self, interface_id: str, prefixes: Sequence[str]) -> None:
        if prefixes:
            self._send("UnassignPrivateIpAddresses",
                       lambda: ec2.unassign(self.cloud, interface_id, (), list(prefixes)))

    # --- tags and subnets ------------------------------------------------------------------------------

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if resource_ids and tags:
            self._send("CreateTags", lambda: ec2.create_tags(self.cloud, list(resource_ids), dict(tags)))

    def describe_subnets(
        self,
        *,
        vpc_id: str | None = None,
        availability_zone: str | None = None,
        subnet_ids: Sequence[str] | None = None,
    ) -> list[Subnet]:
        return self._send("DescribeSubnets", lambda: ec2.describe_subnets(
            self.cloud, vpc_id, availability_zone, subnet_ids))


if TYPE_CHECKING:
    # mypy proves here that FakeProvider implements the whole CloudProvider protocol.
    def _implements_protocol(provider: FakeProvider) -> CloudProvider:
        return provider

    _PROVIDER: CloudProvider = FakeProvider(FakeCloud())
