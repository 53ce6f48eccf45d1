"""Every way the cloud refuses growth is survived and said, in virtual time: subnet full (with its back-off),
throttling (retried within the budget, then reported), UnauthorizedOperation (a doubling back-off, for
growing and for shrinking apart). The daemon-level versions (tests/cloud/ipamd/test_ipamd_limits.py)
sample real time; here each attempt's time is known exactly.
"""

from __future__ import annotations

import itertools

import pytest

from tests.unit.reconcile.inprocess import InProcessIpamd
from vpccni.cloud.fake import FakeCloud, FakeProvider
from vpccni.wire.protocol import NoIpReason

pytestmark = pytest.mark.asyncio
PASS = 0.1  # one pool pass (VPCCNI_POOL_LOOP_PERIOD here): how late a timer may be seen, never early


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in itertools.pairwise(times)]


def doubling(gaps_s: list[float], first: float = 2.0, cap: float = 300.0) -> bool:
    """Each gap is the back-off (2 s, 4 s, 8 s ... at most 5 min), seen within one pass."""
    return all(min(cap, first * 2**n) <= gap <= min(cap, first * 2**n) + PASS for n, gap in enumerate(gaps_s))


async def test_subnet_full_backs_off_and_says_so() -> None:
    cloud = FakeCloud(seed=3)
    vpc = cloud.create_vpc("10.9.0.0/16")
    small = cloud.create_subnet(vpc, "10.9.0.0/28")  # 11 addresses: the node's, 9 for the primary's pool, 1
    group = cloud.create_security_group(vpc, "small")
    ipamd = InProcessIpamd("m5.large", {"VPCCNI_SUBNET_FULL_BACKOFF": "60"}, cloud=cloud, subnet=small,
                           security_groups=[group])
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(9))
    await ipamd.run_for(PASS)
    reason, message = ipamd.refused("p9")
    assert reason is NoIpReason.SUBNET_FULL
    assert "InsufficientFreeAddressesInSubnet" in message and small.subnet_id in message
    assert "VPCCNI_SUBNET_FULL_BACKOFF" in message
    [refused_at] = ipamd.attempts("CreateNetworkInterface")

    await ipamd.run_for(59.5)  # ~600 passes inside the back-off: not one more attempt
    assert ipamd.attempts("CreateNetworkInterface") == [refused_at]
    assert "next growth attempt in" in str(ipamd.add("p9"))
    await ipamd.run_for(1.0)
    again = ipamd.attempts("CreateNetworkInterface")
    assert len(again) == 2 and 60 <= again[1] - refused_at <= 60 + PASS, "again once the back-off ran out"
    assert [e.interface_id for e in cloud.interfaces(ipamd.node.instance_id)] == [ipamd.node.primary_eni_id]


async def test_throttling_is_reported_while_it_lasts_then_the_pool_fills() -> None:
    ipamd = InProcessIpamd("m5.large")
    ipamd.cloud.fail("AssignPrivateIpAddresses", "RequestLimitExceeded", count=None)
    await ipamd.start()
    reason, message = ipamd.refused("a")
    assert reason is NoIpReason.THROTTLED and "throttled" in message
    assert ipamd.status.current is not None and ipamd.status.current.reason is NoIpReason.THROTTLED
    assert len(ipamd.attempts("AssignPrivateIpAddresses")) == 5 == ipamd.throttled, (
        "the provider retried (5 attempts, backing off in virtual time) before giving up")
    assert ipamd.clock.now > 0, "the back-off and the drained API budget waited, virtually"

    ipamd.cloud.clear_faults()
    await ipamd.place(["a"], also_wait_for=frozenset({NoIpReason.THROTTLED}))
    await ipamd.settle()
    # One pod on a full primary leaves 8 free < WARM_ENI_TARGET's 9: aws's second ENI.
    assert ipamd.datastore.stats().total == 18
    last = ipamd.status.last
    assert last is not None and last.reason is NoIpReason.THROTTLED and last.cleared_at is not None
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


async def test_unauthorized_names_the_action_and_backs_off_doubling_until_iam_is_fixed() -> None:
    ipamd = InProcessIpamd("m5.large")
    ipamd.cloud.fail("AssignPrivateIpAddresses", "UnauthorizedOperation", count=None,
                     message="You are not authorized to perform: ec2:AssignPrivateIpAddresses.")
    await ipamd.start()
    reason, message = ipamd.refused("a")
    assert reason is NoIpReason.UNAUTHORIZED and "AssignPrivateIpAddresses" in message and "IAM" in message
    assert "AssignPrivateIpAddresses" in ipamd.reconciler.unauthorized
    assert ipamd.refusals[0][0] == "ec2:AssignPrivateIpAddresses", "the hook (an Event) names the permission"

    await ipamd.run_for(31)  # a pass every 0.1 s: ~310 passes
    attempts = ipamd.attempts("AssignPrivateIpAddresses")
    assert len(attempts) == 5 and doubling(gaps(attempts)), f"2 s, 4 s, 8 s, 16 s apart: {gaps(attempts)}"
    assert "doubling while EC2 refuses" in str(ipamd.add("a"))

    ipamd.cloud.clear_faults()
    await ipamd.run_for(32 + PASS)  # the current back-off (32 s) runs out: the next attempt succeeds
    assert ipamd.add_ok("a")
    last = ipamd.status.last
    assert last is not None and last.reason is NoIpReason.UNAUTHORIZED and last.cleared_at is not None


async def test_the_unauthorized_back_off_stops_doubling_at_five_minutes() -> None:
    ipamd = InProcessIpamd("m5.large", {"VPCCNI_POOL_LOOP_PERIOD": "1"})
    ipamd.cloud.fail("AssignPrivateIpAddresses", "UnauthorizedOperation", count=None)
    await ipamd.start()
    await ipamd.run_for(1800)
    spaced = gaps(ipamd.attempts("AssignPrivateIpAddresses"))
    assert spaced[:8] == [2, 4, 8, 16, 32, 64, 128, 256] and set(spaced[8:]) == {300}, spaced


async def test_a_release_refused_again_and_again_backs_off_too() -> None:
    ipamd = InProcessIpamd("m5.large", {"WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "2",
                                        "VPCCNI_RELEASE_SPACING": "0"})
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(5))
    await ipamd.settle()
    ipamd.cloud.fail("UnassignPrivateIpAddresses", "UnauthorizedOperation", count=None)
    for n in range(5):
        ipamd.delete(f"p{n}")
    await ipamd.run_for(40)
    attempts = ipamd.attempts("UnassignPrivateIpAddresses")
    # No release spacing: a refusal retried every pass would be ~400 attempts.
    assert len(attempts) == 5 and doubling(gaps(attempts)), f"2 s, 4 s, 8 s, 16 s apart: {gaps(attempts)}"
    assert "UnassignPrivateIpAddresses" in ipamd.reconciler.unauthorized
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs(), "a refused release puts the addresses back"
    assert ipamd.attempts("AssignPrivateIpAddresses")[-1] < attempts[0], "and the pool did not grow meanwhile"


async def test_a_full_node_subnet_grows_the_pool_through_an_eni_in_a_subnet_with_room() -> None:
    """EC2 refuses the primary ENI's addresses (its subnet is full): that subnet is marked full for the
    back-off and the next pass creates an ENI in the tagged subnet of the zone, instead of asking the full
    one again every back-off (aws-node stops all growth there until the cooldown ends)."""
    cloud = FakeCloud(seed=5)
    vpc = cloud.create_vpc("10.9.0.0/16")
    small = cloud.create_subnet(vpc, "10.9.0.0/28")  # 11 usable addresses
    roomy = cloud.create_subnet(vpc, "10.9.1.0/24", tags={"kubernetes.io/role/cni": "1"})
    group = cloud.create_security_group(vpc, "nodes")
    neighbour = cloud.add_node("m5.large", subnet=small, security_groups=[group])
    FakeProvider(cloud).assign_addresses(neighbour.primary_eni_id, 9)  # the node's own primary is the 11th
    ipamd = InProcessIpamd("m5.large", {"VPCCNI_SUBNET_FULL_BACKOFF": "60"}, cloud=cloud, subnet=small,
                           security_groups=[group])
    await ipamd.start()
    reason, message = ipamd.refused("p0")
    assert reason is NoIpReason.SUBNET_FULL and small.subnet_id in message and "another subnet" in message
    await ipamd.place((f"p{n}" for n in range(9)), also_wait_for=frozenset({NoIpReason.SUBNET_FULL}))
    enis = cloud.interfaces(ipamd.node.instance_id)
    assert [e.subnet_id for e in enis] == [small.subnet_id, roomy.subnet_id]
    assert len(ipamd.attempts("AssignPrivateIpAddresses")) == 1, "the full subnet is not asked again"
    assert ipamd.clock.now < 60, "no wait for the back-off: the other subnet had room"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


async def test_an_eni_attached_before_a_throttle_is_adopted_not_replaced() -> None:
    """Attach succeeded, then DeleteOnTermination was throttled past the retries: the ENI is attached in
    EC2 but not in the datastore. The reconciler resyncs and adopts it (setting DeleteOnTermination)
    instead of creating one more ENI, whose attach would meet the ENI limit."""
    ipamd = InProcessIpamd("m5.large")
    await ipamd.start()
    ipamd.cloud.fail("ModifyNetworkInterfaceAttribute", "RequestLimitExceeded", count=5)
    await ipamd.place(["a"], also_wait_for=frozenset({NoIpReason.THROTTLED}))
    await ipamd.run_for(1.0)
    attached = ipamd.cloud.interfaces(ipamd.node.instance_id)
    assert len(attached) == 2 and all(e.attachment and e.attachment.delete_on_termination for e in attached)
    assert len(ipamd.attempts("CreateNetworkInterface")) == 1, "adopted, not replaced"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
