"""The reconciler grows and shrinks the pool through the cloud as the daemon does, in virtual time.

The real Reconciler, Datastore and pool decisions over the in-memory fake EC2 (see inprocess.py): the
rules the daemon-level tests check in seconds of real time (tests/cloud/ipamd), checked here exactly,
with the clock under the test's control.
"""

from __future__ import annotations

import pytest

from tests.unit.reconcile.inprocess import InProcessIpamd
from vpccni.wire.protocol import NoIpReason

pytestmark = pytest.mark.asyncio
PASS = 0.1  # one pool pass: how late a timer may be seen, never early

M5_LARGE_SHAPES = [(0, [9]), (1, [9, 9]), (9, [9, 9]), (10, [9, 9, 9]), (18, [9, 9, 9]), (27, [9, 9, 9])]


@pytest.mark.parametrize(("pods", "shape"), M5_LARGE_SHAPES)
async def test_growth_keeps_one_warm_eni_on_m5_large(pods: int, shape: list[int]) -> None:
    """WARM_ENI_TARGET=1 (the default): 9 pod addresses per ENI, 3 ENIs; a fresh node fills its primary."""
    ipamd = InProcessIpamd("m5.large")
    first = await ipamd.start()
    assert first.assign == ((ipamd.node.primary_eni_id, 9),), "pre-scaling fills the primary in one call"
    await ipamd.place(f"p{n}" for n in range(pods))
    await ipamd.settle()
    assert ipamd.shape() == shape
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs(), "the datastore holds what EC2 assigned, no more"
    enis = len(shape)
    assert ipamd.mutations() == {"AssignPrivateIpAddresses": 1, **(
        {"CreateNetworkInterface": enis - 1, "AttachNetworkInterface": enis - 1,
         "ModifyNetworkInterfaceAttribute": enis - 1} if enis > 1 else {})}, "one call per step, no retries"
    attached = ipamd.cloud.interfaces(ipamd.node.instance_id)
    assert [e.device_index for e in attached] == list(range(enis)), "lowest free device index each time"
    assert all(e.attachment and e.attachment.delete_on_termination for e in attached)
    assert [e.interface_id for e in ipamd.cloud.interfaces() if e.attachment is None] == [], "nothing leaked"
    blocked = ipamd.status.current
    if pods >= 19:  # fewer than 9 available and no ENI slot left
        assert blocked is not None and blocked.reason is NoIpReason.ENI_LIMIT
        assert "3 of 3 ENIs (m5.large)" in blocked.message
    else:
        assert blocked is None


async def test_a_full_node_answers_eni_limit_to_the_next_add() -> None:
    ipamd = InProcessIpamd("m5.large")
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(27))
    await ipamd.run_for(5)
    reason, message = ipamd.refused("p27")
    assert reason is NoIpReason.ENI_LIMIT and "every ENI is full" in message
    assert len(ipamd.attempts("CreateNetworkInterface")) == 2, "no third create: the pool knows the limit"


async def test_shrinking_waits_for_the_cooldown_and_spaces_releases() -> None:
    ipamd = InProcessIpamd("m5.large", {"WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "2",
                                        "IP_COOLDOWN_PERIOD": "30", "VPCCNI_RELEASE_SPACING": "10"})
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(5))
    await ipamd.settle()
    assert ipamd.shape() == [7], "5 pods + WARM_IP_TARGET 2"
    t0 = ipamd.clock.now
    for n in range(3):
        ipamd.delete(f"p{n}")
    await ipamd.run_for(5)
    for n in range(3, 5):
        ipamd.delete(f"p{n}")
    await ipamd.settle(max_s=300)
    first, second = ipamd.after(ipamd.attempts("UnassignPrivateIpAddresses"), t0)
    # The first three cool until t0+30; the last two until t0+35, but the spacing holds them to t0+40.
    assert 30 <= first <= 30 + PASS and 10 <= second - first <= 10 + PASS
    assert ipamd.shape() == [2], "back to MINIMUM_IP_TARGET"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    assert ipamd.cloud.free_addresses(ipamd.node.subnet_id) == 4091 - 1 - 2, "the 5 went back to the subnet"


async def test_an_idle_eni_is_freed_once_old_enough_and_deleted_not_leaked() -> None:
    ipamd = InProcessIpamd("m5.large", {"VPCCNI_MIN_ENI_AGE": "120"})
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(10))
    await ipamd.settle()
    assert ipamd.shape() == [9, 9, 9]
    created = ipamd.attempts("AttachNetworkInterface")[-1]
    for n in range(10):
        ipamd.delete(f"p{n}")
    await ipamd.settle(max_s=600)
    # 27 free, WARM_ENI_TARGET 1: one ENI goes (27 >= 2 x 9 + half an ENI); the second stays (18 < 22.5).
    assert ipamd.shape() == [9, 9]
    [detached] = ipamd.attempts("DetachNetworkInterface")
    assert detached - created >= 120, "not before VPCCNI_MIN_ENI_AGE"
    assert ipamd.attempts("DeleteNetworkInterface") == [detached], "deleted right after the detach"
    assert [e for e in ipamd.cloud.interfaces() if e.attachment is None] == []
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


async def test_an_attach_refused_by_ec2_is_resynced_and_the_eni_deleted() -> None:
    ipamd = InProcessIpamd("t3.medium")  # 6 addresses per ENI: 5 for pods
    await ipamd.start()
    await ipamd.settle()
    syncs = ipamd.reconciler.syncs
    ipamd.cloud.fail("AttachNetworkInterface", "AttachmentLimitExceeded", count=1)
    await ipamd.place(f"p{n}" for n in range(4))
    await ipamd.run_for(0.1)  # 1 free < 5 wanted: grow, and EC2 refuses the attach
    last = ipamd.status.last
    assert last is not None and last.reason is NoIpReason.ENI_LIMIT
    assert "AttachmentLimitExceeded" in last.message
    assert [e for e in ipamd.cloud.interfaces() if e.attachment is None] == [], "the refused ENI was deleted"
    await ipamd.settle()
    assert ipamd.reconciler.syncs > syncs, "EC2 was asked after the refusal"
    assert ipamd.shape() == [5, 5], "a second ENI once EC2 accepts"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


async def test_prefix_delegation_grows_by_whole_prefixes() -> None:
    ipamd = InProcessIpamd("m5.large", {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"})
    await ipamd.start()
    await ipamd.place(f"p{n}" for n in range(17))
    await ipamd.settle()
    [primary] = ipamd.cloud.interfaces(ipamd.node.instance_id)
    assert primary.secondary_addresses == () and len(primary.prefixes) == 3, "17 pods: 2 prefixes + 1 warm"
    assert ipamd.datastore.stats().total == 48 and ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


async def test_provisioning_disabled_uses_what_is_attached_and_calls_no_mutation() -> None:
    ipamd = InProcessIpamd("m5.large", {"DISABLE_NETWORK_RESOURCE_PROVISIONING": "true"})
    ipamd.provider.assign_addresses(ipamd.node.primary_eni_id, 2)  # someone else gave the node two
    before = ipamd.cloud.mutation_count
    await ipamd.start()
    ipamd.add_ok("a")
    ipamd.add_ok("b")
    await ipamd.run_for(10)
    reason, message = ipamd.refused("c")
    assert reason is NoIpReason.PROVISIONING_DISABLED and "DISABLE_NETWORK_RESOURCE_PROVISIONING" in message
    assert ipamd.cloud.mutation_count == before
