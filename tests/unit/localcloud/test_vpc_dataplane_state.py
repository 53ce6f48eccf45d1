"""The emulated VPC's desired state and plans, as pure functions of EC2's views (no namespaces here)."""

from __future__ import annotations

import dataclasses

import pytest

from vpccni.localcloud.model import EniView, InstanceView
from vpccni.localcloud.vpc.state import (
    EMPTY,
    after,
    desired_state,
    plan_changes,
    subnet_gateway,
    vpc_link_name,
)

PREFIX = "vd"


def eni(
    eni_id: str, instance_id: str | None, index: int | None, ips: tuple[str, ...], **kw: object
) -> EniView:
    base = EniView(
        eni_id=eni_id,
        mac=f"0A:00:00:00:00:{len(eni_id):02x}",
        subnet_id="subnet-1",
        subnet_cidr="10.0.0.0/20",
        vpc_id="vpc-1",
        vpc_cidrs=("10.0.0.0/16",),
        availability_zone="us-west-2a",
        security_group_ids=(),
        private_ips=ips,
        ipv4_prefixes=(),
        status="in-use" if instance_id else "available",
        instance_id=instance_id,
        device_index=index,
        attachment_status="attached" if instance_id else None,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def instance(instance_id: str, *enis: EniView, state: str = "running") -> InstanceView:
    return InstanceView(
        instance_id=instance_id,
        instance_type="m5.large",
        availability_zone="us-west-2a",
        region="us-west-2",
        subnet_id="subnet-1",
        vpc_id="vpc-1",
        state=state,
        enis=enis,
    )


PRIMARY_A = eni("eni-00000000000000a00", "i-a", 0, ("10.0.0.10", "10.0.0.11"))
SECOND_A = eni("eni-00000000000000a01", "i-a", 1, ("10.0.0.20",), ipv4_prefixes=("10.0.0.32/28",))
PRIMARY_B = eni("eni-00000000000000b00", "i-b", 0, ("10.0.0.40",))


def test_every_address_and_prefix_is_routed_to_its_eni_via_the_eni_primary() -> None:
    state = desired_state([instance("i-a", PRIMARY_A, SECOND_A)], PREFIX)
    a0, a1 = (vpc_link_name(PREFIX, e.eni_id) for e in (PRIMARY_A, SECOND_A))
    assert {dst: (r.vpc_ifname, r.via) for dst, r in state.routes.items()} == {
        "10.0.0.10/32": (a0, None),
        "10.0.0.11/32": (a0, "10.0.0.10"),
        "10.0.0.20/32": (a1, None),
        "10.0.0.32/28": (a1, "10.0.0.20"),
    }
    link = state.links[SECOND_A.eni_id]
    assert (link.node_ifname, link.mac, link.gateway) == ("eth1", "0a:00:00:00:00:15", "10.0.0.1")
    assert link.prefixlen == 20
    assert state.links[PRIMARY_A.eni_id].is_primary and not link.is_primary


@pytest.mark.parametrize("state", ["terminated", "shutting-down", "stopped"])
def test_an_instance_that_is_not_running_gets_no_links(state: str) -> None:
    assert desired_state([instance("i-a", PRIMARY_A, state=state)], PREFIX) == EMPTY


def test_unattached_and_addressless_enis_are_ignored() -> None:
    detached = eni("eni-00000000000000c00", None, None, ("10.0.0.50",))
    empty = eni("eni-00000000000000c01", "i-a", 2, ())
    state = desired_state([instance("i-a", PRIMARY_A, detached, empty)], PREFIX)
    assert set(state.links) == {PRIMARY_A.eni_id}


def test_plan_from_nothing_adds_links_by_device_index_and_primary_routes_first() -> None:
    desired = desired_state([instance("i-a", SECOND_A, PRIMARY_A)], PREFIX)
    plan = plan_changes(EMPTY, desired)
    assert [link.device_index for link in plan.add_links] == [0, 1]
    vias = [route.via for route in plan.set_routes]
    assert vias.index("10.0.0.10") > max(i for i, via in enumerate(vias) if via is None)
    assert not plan.remove_links and not plan.delete_routes
    assert after(EMPTY, plan) == desired
    assert plan_changes(desired, desired).empty


def test_an_address_moving_to_another_eni_is_one_route_replacement() -> None:
    before = desired_state([instance("i-a", PRIMARY_A), instance("i-b", PRIMARY_B)], PREFIX)
    moved_a = dataclasses.replace(PRIMARY_A, private_ips=("10.0.0.10",))
    moved_b = dataclasses.replace(PRIMARY_B, private_ips=("10.0.0.40", "10.0.0.11"))
    now = desired_state([instance("i-a", moved_a), instance("i-b", moved_b)], PREFIX)
    plan = plan_changes(before, now)
    assert not plan.add_links and not plan.remove_links and not plan.delete_routes
    assert [(r.dst, r.vpc_ifname, r.via) for r in plan.set_routes] == [
        ("10.0.0.11/32", vpc_link_name(PREFIX, PRIMARY_B.eni_id), "10.0.0.40")
    ]
    assert after(before, plan) == now


def test_unassigning_deletes_exactly_that_route() -> None:
    before = desired_state([instance("i-a", PRIMARY_A)], PREFIX)
    now = desired_state([instance("i-a", dataclasses.replace(PRIMARY_A, private_ips=("10.0.0.10",)))], PREFIX)
    plan = plan_changes(before, now)
    assert [r.dst for r in plan.delete_routes] == ["10.0.0.11/32"] and not plan.set_routes
    assert after(before, plan) == now


def test_an_eni_moving_to_another_instance_is_recreated_with_its_routes() -> None:
    before = desired_state([instance("i-a", PRIMARY_A, SECOND_A), instance("i-b", PRIMARY_B)], PREFIX)
    moved = dataclasses.replace(SECOND_A, instance_id="i-b", device_index=2)
    now = desired_state([instance("i-a", PRIMARY_A), instance("i-b", PRIMARY_B, moved)], PREFIX)
    plan = plan_changes(before, now)
    assert [link.instance_id for link in plan.remove_links] == ["i-a"]
    assert [(link.instance_id, link.node_ifname) for link in plan.add_links] == [("i-b", "eth2")]
    # Removing the old link took its routes; all of them are set again over the new one.
    assert {r.dst for r in plan.set_routes} == {"10.0.0.20/32", "10.0.0.32/28"} and not plan.delete_routes
    assert after(before, plan) == now


def test_a_terminated_instance_loses_links_without_deleting_routes_one_by_one() -> None:
    before = desired_state([instance("i-a", PRIMARY_A, SECOND_A)], PREFIX)
    plan = plan_changes(before, desired_state([instance("i-a", PRIMARY_A, state="terminated")], PREFIX))
    assert len(plan.remove_links) == 2 and not plan.delete_routes and not plan.add_links
    assert after(before, plan) == EMPTY


def test_link_names_fit_ifnamsiz_and_carry_the_prefix() -> None:
    name = vpc_link_name("vdlonger8", "eni-0123456789abcdef0")
    assert name.startswith("vdlonger8") and len(name) == 15 and name.endswith("bcdef0")
    with pytest.raises(ValueError):
        vpc_link_name("toolongprefix", "eni-0123456789abcdef0")
    assert subnet_gateway("10.0.16.0/20") == "10.0.16.1"
