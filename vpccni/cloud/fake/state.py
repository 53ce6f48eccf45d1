"""The fake EC2's state: its records by id, lookups that fail with EC2's own codes, and instance limits.

Everything here runs under :class:`~vpccni.cloud.fake.cloud.FakeCloud`'s lock. Ids look like EC2's
(``eni-`` + 17 hex digits) but come from counters, so a seeded run names the same resources every time.

Limits are :mod:`vpccni.config.limits` (the bundled table ipamd itself reads), plus any type a test
registers (:meth:`FakeState.register_instance_type`: the pool simulator's made-up node shapes). An ENI
attached to nothing may hold as many addresses as the largest type allows per ENI; EC2 checks the real
type's limit when it is attached (the local cloud does the same).
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator

from vpccni.cloud.fake.model import EniRec, InstanceRec, SubnetRec, VpcRec
from vpccni.config import limits as limits_table
from vpccni.config.limits import InstanceLimits


class Ec2Error(Exception):
    """An EC2 error answer: ``code`` (e.g. ``AttachmentLimitExceeded``) and ``message``; the provider maps
    it to vpccni's exception classes exactly as the AWS provider maps botocore's."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"{code}: {message}")


def invalid_parameter(message: str) -> Ec2Error:
    return Ec2Error("InvalidParameterValue", message)


@functools.cache
def _largest_slot_count() -> int:
    return max(limits_table.require(t).ipv4_per_eni for t in limits_table.known_instance_types())


class FakeState:
    """Records by id, and EC2-style lookups over them."""

    def __init__(self, *, region: str, seed: int) -> None:
        self.region = region
        self.rng = random.Random(seed)  # address choice, as the local cloud's: seeded, so replayable
        self._ids = itertools.count(1)
        self.vpcs: dict[str, VpcRec] = {}
        self.groups: dict[str, str] = {}  # security group id -> its VPC
        self.subnets: dict[str, SubnetRec] = {}
        self.instances: dict[str, InstanceRec] = {}
        self.enis: dict[str, EniRec] = {}
        self.by_attachment: dict[str, EniRec] = {}
        self.attached: dict[str, dict[str, EniRec]] = {}  # instance id -> its ENIs by id
        self.other_tags: dict[str, dict[str, str]] = {}  # of VPCs, groups, instances (nothing reads them)
        self._custom_types: dict[str, InstanceLimits] = {}

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):017x}"

    def new_mac(self) -> str:
        n = next(self._ids)
        return f"02:00:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"

    # --- instance types ------------------------------------------------------------------------------

    def register_instance_type(self, limits: InstanceLimits) -> None:
        """Make ``limits.instance_type`` known (or override a bundled one) in this cloud only."""
        self._custom_types[limits.instance_type] = limits

    def limits_for(self, instance_type: str) -> InstanceLimits | None:
        custom = self._custom_types.get(instance_type)
        return custom if custom is not None else limits_table.lookup(instance_type)

    def unattached_slot_limit(self) -> int:
        return max([_largest_slot_count(), *(t.ipv4_per_eni for t in self._custom_types.values())])

    def slot_limit(self, eni: EniRec) -> int:
        if eni.attachment is None:
            return self.unattached_slot_limit()
        return self.instance(eni.attachment.instance_id).limits.ipv4_per_eni

    # --- lookups that fail the way EC2 does ------------------------------------------------------------

    def eni(self, eni_id: str) -> EniRec:
        found = self.enis.get(eni_id)
        if found is None:
            raise Ec2Error("InvalidNetworkInterfaceID.NotFound",
                           f"The networkInterface ID '{eni_id}' does not exist")
        return found

    def instance(self, instance_id: str) -> InstanceRec:
        found = self.instances.get(instance_id)
        if found is None:
            raise Ec2Error("InvalidInstanceID.NotFound", f"The instance ID '{instance_id}' does not exist")
        return found

    def subnet(self, subnet_id: str) -> SubnetRec:
        found = self.subnets.get(subnet_id)
        if found is None:
            raise Ec2Error("InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist")
        return found

    def group(self, group_id: str) -> str:
        """The VPC of security group ``group_id``."""
        vpc_id = self.groups.get(group_id)
        if vpc_id is None:
            raise Ec2Error("InvalidGroup.NotFound", f"The security group '{group_id}' does not exist")
        return vpc_id

    def eni_by_attachment(self, attachment_id: str) -> EniRec:
        found = self.by_attachment.get(attachment_id)
        if found is None:
            raise Ec2Error("InvalidAttachmentID.NotFound",
                           f"The attachment ID '{attachment_id}' does not exist")
        return found

    def attached_enis(self, instance_id: str) -> list[EniRec]:
        """ENIs attached to ``instance_id`` by (network card, device index)."""
        enis = self.attached.get(instance_id, {}).values()
        return sorted(enis, key=lambda e: (e.attachment.network_card_index, e.attachment.device_index)
                      if e.attachment else (0, 0))

    def iter_enis(self) -> Iterator[EniRec]:
        return iter(list(self.enis.values()))

    # --- attachment bookkeeping ------------------------------------------------------------------------

    def link(self, eni: EniRec) -> None:
        a = eni.attachment
        assert a is not None
        self.by_attachment[a.attachment_id] = eni
        self.attached.setdefault(a.instance_id, {})[eni.eni_id] = eni

    def unlink(self, eni: EniRec) -> None:
        a = eni.attachment
        if a is None:
            return
        self.by_attachment.pop(a.attachment_id, None)
        self.attached.get(a.instance_id, {}).pop(eni.eni_id, None)
        eni.attachment = None  # DeleteOnTermination belongs to the attachment: it goes with it

    def drop(self, eni: EniRec) -> None:
        """Delete ``eni`` and give its addresses and prefixes back to the subnet."""
        self.unlink(eni)
        del self.enis[eni.eni_id]
        eni.subnet.give_back([eni.primary, *eni.secondaries], eni.prefixes)
