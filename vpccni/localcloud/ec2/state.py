"""The local cloud's window onto moto's EC2 state for one account and region.

moto keeps the state (``moto.ec2.models.ec2_backends[account][region]``, in this process); this module is
the only place that knows moto's object model: lookups that fail with EC2's own NotFound codes, the taken
addresses of a subnet, per-instance-type limits (vpccni's bundled table, not moto's data), and the
read-only views (vpccni.localcloud.model) that the IMDS and the VPC dataplane consume.

Prefix delegation is ours: moto ignores it. A delegated /28 is kept on moto's ENI object under
``ipv4_prefixes`` as ``[{"Ipv4Prefix": "10.0.1.32/28"}]`` — the attribute name and shape moto's response
serializer looks up for EC2's ``Ipv4Prefixes`` member, so DescribeNetworkInterfaces and DescribeInstances
show prefixes with no XML patching, and deleting the ENI drops them with it.

Callers hold the server's state lock around everything here: moto is not built for concurrent mutation.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from vpccni.cloud.addressing import SubnetSpace
from vpccni.config.limits import InstanceLimits, known_instance_types, lookup, require
from vpccni.errors import CloudNotFound
from vpccni.localcloud.ec2 import motofast
from vpccni.localcloud.ec2.query import Ec2ApiError
from vpccni.localcloud.model import EniView, InstanceView

PREFIX_ATTR = "ipv4_prefixes"
_BACKEND_CREATION = threading.Lock()


def _own_security_groups_only() -> None:
    """moto reports an attached ENI's security groups as its own PLUS its instance's; EC2 reports the
    ENI's own. An ENI that custom networking created with an ENIConfig's groups would look, after attach,
    as if it also had the node's. Idempotent (the same property each time)."""
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface

    own_groups = property(lambda eni: eni._group_set)
    NetworkInterface.group_set = own_groups  # type: ignore[method-assign,assignment]


@dataclass(frozen=True)
class InstanceTypeLimits:
    """What the local EC2 enforces for one instance type."""

    max_enis: int  # ENIs on the default network card, primary included (the only card emulated)
    ipv4_per_eni: int  # IPv4 addresses per ENI (primary included; a /28 takes one slot)


@functools.cache
def _instance_types() -> dict[str, Any]:
    """moto's DescribeInstanceTypes items (what the local EC2 answers DescribeInstanceTypes from)."""
    from moto.ec2.models.instance_types import INSTANCE_TYPES

    return dict(INSTANCE_TYPES)


def limits_for(instance_type: str) -> InstanceTypeLimits | None:
    """The type's limits from vpccni's bundled table (:mod:`vpccni.config.limits`); None for an unknown type.

    The same table ``vpccni max-pods`` and ipamd read, so the local cloud enforces aws's numbers where
    moto's raw DescribeInstanceTypes data differs (i7ie.48xlarge: 15 ENIs on one card, not 8 on each of
    two) and knows the types moto no longer lists (g4ad, p3, u-*tb1.metal ...). A type only the local
    DescribeInstanceTypes knows (a test's "future" type, added there) is parsed as ipamd's runtime
    fallback parses it. Only card 0 is emulated, so its ENI limit is the attach limit.
    """
    limits = lookup(instance_type)
    if limits is None:
        item = _instance_types().get(instance_type)
        if item is None:
            return None
        limits = InstanceLimits.from_describe(item)
    return InstanceTypeLimits(limits.max_enis, limits.ipv4_per_eni)


@functools.cache
def unattached_slot_limit() -> int:
    """Address slots of an ENI attached to nothing: the largest per-ENI limit of any type (50).

    An ENI is checked against its instance type's limit when attached; until then EC2 lets it hold as
    many addresses as the biggest type could use.
    """
    return max(limits.ipv4_per_eni for limits in map(require, known_instance_types()))


@contextlib.contextmanager
def moto_errors() -> Iterator[None]:
    """Turn a moto EC2 error raised in-process into the Ec2ApiError a client would have seen."""
    from moto.core.exceptions import ServiceException

    try:
        yield
    except ServiceException as error:
        raise Ec2ApiError(str(error.code), str(error.message)) from error


# Successful mutating actions that change no subnet's taken addresses, and those whose handlers report
# exactly what they took or gave back (took/gave_back); any other mutation drops the subnet index.
ADDRESS_NEUTRAL = frozenset({"AttachNetworkInterface", "DetachNetworkInterface",
                             "ModifyNetworkInterfaceAttribute", "CreateTags", "DeleteTags"})
ADDRESS_REPORTED = frozenset({"AssignPrivateIpAddresses", "UnassignPrivateIpAddresses",
                              "CreateNetworkInterface", "DeleteNetworkInterface"})


class _Taken:
    """One subnet's taken addresses as integers, and how many lie in its usable range."""

    def __init__(self, space: SubnetSpace) -> None:
        self.used = set(space.used)
        self.low, self.high = int(space.cidr.network_address) + 4, int(space.cidr.broadcast_address) - 1
        self.in_range = sum(1 for a in self.used if self.low <= a <= self.high)

    def change(self, values: set[int], taken: bool) -> None:
        for value in values:
            if (value in self.used) == taken:
                continue  # already so: counted once
            if taken:
                self.used.add(value)
            else:
                self.used.discard(value)
            if self.low <= value <= self.high:
                self.in_range += 1 if taken else -1


class Ec2State:
    """Lookups and views over one account/region of moto's EC2 backend.

    The taken addresses of each subnet are indexed: a subnet's space is built once by walking every ENI
    (what :meth:`space` did on each request, which grows with the account's ENIs: a fleet of thousands
    made every AssignPrivateIpAddresses walk them all), then kept in step by the handlers that take or
    give back addresses (:meth:`took`, :meth:`gave_back`). Any other change to addresses — a mutating
    action not known to leave them alone, a request that bypasses the EC2 handlers — drops the index
    (:meth:`after_mutation`, :meth:`forget_index`) and the next request rebuilds it.
    """

    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self._taken: dict[str, _Taken] = {}

    @property
    def backend(self) -> Any:
        from moto.ec2.models import ec2_backends

        return ec2_backends[self.account_id][self.region]

    def create(self, *, load_default_amis: bool = False) -> None:
        """Create this account's EC2 backend (default VPC, subnets, security groups).

        moto also loads its ~1300 public AMIs into every new backend, ~0.3 s each time; nodes of the
        local cloud launch from any image id, so that is skipped unless asked for — by switching moto's
        setting off only while this backend is built.
        """
        from moto import settings

        _own_security_groups_only()
        motofast.install()
        motofast.register(self)
        with _BACKEND_CREATION:
            original = settings.ec2_load_default_amis
            if not load_default_amis:
                settings.ec2_load_default_amis = lambda: False
            try:
                _ = self.backend
            finally:
                settings.ec2_load_default_amis = original

    def forget(self) -> None:
        """Drop this account's EC2 state from moto (the server is going away)."""
        from moto.ec2.models import ec2_backends

        self._taken.clear()
        motofast.forget(self)
        ec2_backends.pop(self.account_id, None)

    # --- lookups that fail the way EC2 does -----------------------------------------------------------

    def eni(self, eni_id: str | None) -> Any:
        eni = self.backend.enis.get(eni_id or "")
        if eni is None:
            raise Ec2ApiError(
                "InvalidNetworkInterfaceID.NotFound", f"The networkInterface ID '{eni_id}' does not exist"
            )
        return eni

    def instance(self, instance_id: str | None) -> Any:
        with moto_errors():
            return self.backend.get_instance(instance_id or "")

    def subnet(self, subnet_id: str | None) -> Any:
        with moto_errors():
            return self.backend.get_subnet(subnet_id or "")

    def enis(self) -> list[Any]:
        return list(self.backend.enis.values())

    def attached_enis(self, instance: Any) -> list[Any]:
        """ENIs attached to ``instance``, by device index. moto's ``instance.nics`` keeps entries for ENIs
        deleted at termination, so each is checked from the ENI's side (still known, attached here):
        the same answer as walking every ENI of the account, without the walk."""
        enis = self.backend.enis
        found = [e for e in instance.nics.values() if e.instance is instance and enis.get(e.id) is e]
        return sorted(found, key=lambda e: e.device_index if e.device_index is not None else -1)

    # --- addresses, prefixes, limits -----------------------------------------------------------------

    @staticmethod
    def addresses(eni: Any) -> list[str]:
        """Every private IPv4 address of ``eni``, primary first."""
        primary = eni.private_ip_address
        others = [a["PrivateIpAddress"] for a in eni.private_ip_addresses if a["PrivateIpAddress"] != primary]
        return [primary, *others] if primary else others

    @staticmethod
    def prefixes(eni: Any) -> list[str]:
        return [p["Ipv4Prefix"] for p in getattr(eni, PREFIX_ATTR, [])]

    @staticmethod
    def set_prefixes(eni: Any, prefixes: list[str]) -> None:
        setattr(eni, PREFIX_ATTR, [{"Ipv4Prefix": p} for p in prefixes])

    def slots_used(self, eni: Any) -> int:
        return len(self.addresses(eni)) + len(self.prefixes(eni))

    def slot_limit(self, eni: Any) -> int:
        if eni.instance is None:
            return unattached_slot_limit()
        limits = limits_for(eni.instance.instance_type)
        return limits.ipv4_per_eni if limits else unattached_slot_limit()

    def space(self, subnet: Any) -> SubnetSpace:
        """Everything taken in ``subnet``: ENI addresses, delegated prefixes, and addresses moto's subnet
        itself has handed out (instance primaries before their ENI exists). A view of the live index:
        use it for one request, then report what it took."""
        taken = self._taken.get(subnet.id)
        if taken is None:
            taken = self._taken[subnet.id] = _Taken(self._scan(subnet))
        return SubnetSpace(ipaddress.IPv4Network(subnet.cidr_block, strict=False), taken.used,
                           taken_in_range=taken.in_range)

    def _scan(self, subnet: Any) -> SubnetSpace:
        addresses: list[str] = list(getattr(subnet, "_subnet_ips", {}).keys())
        prefixes: list[str] = []
        for eni in self.backend.enis.values():
            if eni.subnet.id == subnet.id:
                addresses.extend(self.addresses(eni))
                prefixes.extend(self.prefixes(eni))
        return SubnetSpace.build(subnet.cidr_block, addresses, prefixes)

    def took(self, subnet: Any, addresses: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
        """A successful request took ``addresses``/``prefixes`` in ``subnet``: keep the index true."""
        self._change(subnet, addresses, prefixes, taken=True)

    def gave_back(self, subnet: Any, addresses: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
        self._change(subnet, addresses, prefixes, taken=False)

    def _change(self, subnet: Any, addresses: Iterable[str], prefixes: Iterable[str], *, taken: bool) -> None:
        index = self._taken.get(subnet.id)
        if index is None:
            return  # built from moto's state on next use
        values = set(SubnetSpace.build(subnet.cidr_block, addresses, prefixes).used)
        index.change(values, taken)

    def after_mutation(self, action: str) -> None:
        """A mutating ``action`` succeeded: the index stays only if the action is known to keep it."""
        if action not in ADDRESS_NEUTRAL and action not in ADDRESS_REPORTED:
            self._taken.clear()

    def forget_index(self) -> None:
        """Something changed moto's state outside the EC2 handlers (a moto-api request, a reset)."""
        self._taken.clear()

    # --- read-only views -----------------------------------------------------------------------------

    def eni_view(self, eni: Any) -> EniView:
        subnet = eni.subnet
        vpc = self.backend.get_vpc(subnet.vpc_id)
        vpc_cidrs = tuple(a["cidr_block"] for a in vpc.get_cidr_block_association_set(ipv6=False)) or (
            vpc.cidr_block,
        )
        attached = eni.instance is not None
        return EniView(
            eni_id=eni.id,
            mac=eni.mac_address,
            subnet_id=subnet.id,
            subnet_cidr=subnet.cidr_block,
            vpc_id=subnet.vpc_id,
            vpc_cidrs=vpc_cidrs,
            availability_zone=subnet.availability_zone,
            security_group_ids=tuple(sorted(g.id for g in eni.group_set)),
            private_ips=tuple(self.addresses(eni)),
            ipv4_prefixes=tuple(self.prefixes(eni)),
            status=eni.status,
            description=eni.description or "",
            tags=tuple(sorted((str(k), str(v)) for k, v in self.backend.tags.get(eni.id, {}).items())),
            instance_id=eni.instance.id if attached else None,
            device_index=eni.device_index if attached else None,
            attachment_id=eni.attachment_id if attached else None,
            attachment_status="attached" if attached else None,
            delete_on_termination=bool(eni.delete_on_termination),
        )

    def instance_view(self, instance_id: str) -> InstanceView:
        try:
            instance = self.instance(instance_id)
        except Ec2ApiError as error:
            raise CloudNotFound("DescribeInstances", error.code, error.message) from error
        return InstanceView(
            instance_id=instance.id,
            instance_type=instance.instance_type,
            availability_zone=instance.placement.zone,
            region=self.region,
            subnet_id=instance.subnet_id or "",
            vpc_id=instance.vpc_id or "",
            state=instance.state,
            enis=tuple(self.eni_view(e) for e in self.attached_enis(instance)),
        )

    def eni_views(self, instance_id: str | None = None) -> list[EniView]:
        enis = self.enis()
        if instance_id is not None:
            enis = [e for e in enis if e.instance is not None and e.instance.id == instance_id]
        return [self.eni_view(e) for e in sorted(enis, key=lambda e: e.id)]
