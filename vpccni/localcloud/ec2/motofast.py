"""moto's lookups by id, made lookups: what keeps the local EC2 fast with thousands of instances.

moto finds one instance by copying every reservation of the account (``get_instance``,
``get_reservations_by_instance_ids``), one ENI by walking every ENI (``get_network_interface``), and one
resource's tags by matching a regex against every tag of the account (``get_tags``). Each is fine for a
test's handful of nodes; a simulated fleet of thousands calls them on nearly every request, so they grow
with the account and dominate. Each is replaced here, at run time and idempotently (as
:func:`vpccni.localcloud.ec2.state._own_security_groups_only` replaces one property), by a lookup in the
dict moto already keeps by id, returning the same objects in the same order and raising the same errors:
the answers do not change, only their cost. moto's source is not touched.
"""

from __future__ import annotations

import copy
from typing import Any

_INDEX = "_vpccni_instance_index"
# The Ec2State of each (account, region), so moto's subnet can count its free addresses from our index.
_STATES: dict[tuple[str, str], Any] = {}


def register(state: Any) -> None:
    _STATES[(state.account_id, state.region)] = state


def forget(state: Any) -> None:
    _STATES.pop((state.account_id, state.region), None)


def install() -> None:
    from moto.ec2.exceptions import InvalidInstanceIdError, InvalidNetworkInterfaceIdError
    from moto.ec2.models.core import TaggedEC2Resource
    from moto.ec2.models.elastic_network_interfaces import NetworkInterfaceBackend
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.models.subnets import Subnet
    from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

    # moto's own count, kept once: install() runs for every account and must not wrap its own patch.
    counted: Any = Subnet.__dict__.get("_vpccni_moto_count") or Subnet.__dict__["available_ip_address_count"]
    Subnet._vpccni_moto_count = counted  # type: ignore[attr-defined]

    def available_ip_address_count(subnet: Any) -> int:
        # moto counts by walking every ENI of the account; our index knows (and counts /28s right).
        backend = subnet.ec2_backend
        state = _STATES.get((backend.account_id, backend.region_name))
        if state is None:
            return int(counted.fget(subnet))
        return int(state.space(subnet).free_count())

    def get_tags(resource: Any) -> list[dict[str, str]]:
        # moto: describe_tags(filters={"resource-id": [id]}), an anchored exact match over every tag.
        resource_id = resource.id
        if not resource_id:
            return []
        kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
        return [{"resource_id": resource_id, "key": key, "value": value, "resource_type": kind}
                for key, value in resource.ec2_backend.tags.get(resource_id, {}).items()]

    def get_network_interface(backend: Any, eni_id: str) -> Any:
        eni = backend.enis.get(eni_id)  # moto keys its ENIs by id
        if eni is None or eni.id != eni_id:
            raise InvalidNetworkInterfaceIdError(eni_id)
        return eni

    def reservation_of(backend: Any, instance_id: str) -> Any:
        """The reservation holding ``instance_id`` (moto only ever adds reservations; the index is
        rebuilt whenever it misses or the reservations changed)."""
        index: dict[str, Any] | None = getattr(backend, _INDEX, None)
        found = index.get(instance_id) if index is not None else None
        if found is None or backend.reservations.get(found.id) is not found:
            index = {instance.id: reservation for reservation in backend.reservations.values()
                     for instance in reservation.instances}
            setattr(backend, _INDEX, index)
            found = index.get(instance_id)
        return found

    def get_instance(backend: Any, instance_id: str) -> Any:
        reservation = reservation_of(backend, instance_id)
        for instance in reservation.instances if reservation is not None else ():
            if instance.id == instance_id:
                return instance
        raise InvalidInstanceIdError(instance_id)

    def get_reservations_by_instance_ids(backend: Any, instance_ids: list[str], filters: Any = None) -> Any:
        from moto.ec2.utils import filter_reservations

        wanted = set(instance_ids)
        holders = {}
        for instance_id in instance_ids:
            reservation = reservation_of(backend, instance_id)
            if reservation is None:
                raise InvalidInstanceIdError(instance_id)
            holders[reservation.id] = reservation
        reservations = []
        for reservation_id in backend.reservations:  # moto's order: the reservations' own
            if reservation_id in holders:
                shallow = copy.copy(holders[reservation_id])
                shallow.instances = [i for i in shallow.instances if i.id in wanted]
                reservations.append(shallow)
        if filters is not None:
            reservations = filter_reservations(reservations, filters)
        return reservations

    replacements: list[tuple[Any, str, Any]] = [
        (TaggedEC2Resource, "get_tags", get_tags),
        (NetworkInterfaceBackend, "get_network_interface", get_network_interface),
        (InstanceBackend, "get_instance", get_instance),
        (InstanceBackend, "get_reservations_by_instance_ids", get_reservations_by_instance_ids),
        (Subnet, "available_ip_address_count", property(available_ip_address_count)),
    ]
    for cls, name, fn in replacements:
        setattr(cls, name, fn)
