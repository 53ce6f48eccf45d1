"""IMDS is a hint, EC2 the truth: ipamd survives an IMDS that lags behind EC2 and one that keeps showing
what EC2 removed (the local cloud's lag and stale modes), before and after a restart.

What must hold whatever IMDS shows: no address handed out that EC2 has not assigned to the node
(aws #3887); nothing removed from the datastore unless EC2 says it is gone (aws #1967); and a lagging
IMDS costs one EC2 describe per change, not one per pool tick.
"""

from __future__ import annotations

import re
import time

from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until

__all__ = ["ipamd_cloud", "run_ipamd"]


def on_ec2(ipamd: Ipamd) -> set[str]:
    return {a for e in ipamd.ec2_enis() for a in e.private_ips[1:]}


def metric(ipamd: Ipamd, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", ipamd.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def add_checked(ipamd: Ipamd, cid: str) -> str:
    address = ipamd.add_ok(cid)
    assert address in on_ec2(ipamd), f"{cid} got {address}, which EC2 has not assigned to the node"
    return address


def test_a_lagging_imds_never_removes_what_ec2_assigned(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("m5.large", start=False)
    ipamd_cloud.imds(ipamd.node).set_lag(6.0)
    ipamd.start()
    for n in range(12):  # fills the primary ENI and attaches two more, none of it visible in IMDS yet
        add_checked(ipamd, f"p{n}")
    wait_until("the pool to settle", ipamd.pool_settled)
    assert len(ipamd.ec2_enis()) == 3
    imds_view = ipamd_cloud.imds(ipamd.node).view()
    assert len(imds_view.enis) < 3, "IMDS still lags: the test would prove nothing otherwise"
    wait_until("ipamd to compare with IMDS and ask EC2",
               lambda: metric(ipamd, 'awscni_reconcile_count{fn="imds"}') >= 1)
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs(), "EC2's view, not IMDS's"
    assert metric(ipamd, "awscni_force_removed_ips") == 0 and metric(ipamd, "awscni_force_removed_enis") == 0

    # While IMDS shows the same stale picture, ipamd does not ask EC2 again at every check.
    syncs = metric(ipamd, 'awscni_reconcile_count{fn="imds"}')
    time.sleep(2.5)  # >= 2 IMDS checks (VPCCNI_POOL_LOOP_PERIOD=0.1 -> one check a second)
    assert metric(ipamd, 'awscni_reconcile_count{fn="imds"}') <= syncs + 1

    # A restart while IMDS still lags starts from EC2: the ENIs IMDS does not show yet are there.
    ipamd.kill()
    ipamd.start()
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    assert {ipamd.add_ok(f"p{n}") for n in range(12)} <= on_ec2(ipamd), "every key kept its address"
    add_checked(ipamd, "p12")


def test_a_stale_imds_never_brings_back_what_ec2_removed(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("m5.large", {"WARM_IP_TARGET": "1"}, start=False)
    ipamd_cloud.imds(ipamd.node).set_stale(30.0)
    ipamd.start()
    held = {f"p{n}": add_checked(ipamd, f"p{n}") for n in range(6)}
    for cid in held:
        assert ipamd.delete(cid).ok
    # After cooldown and release spacing the surplus goes back to EC2; stale IMDS keeps listing it.
    wait_until("the surplus to go back to EC2", lambda: len(on_ec2(ipamd)) <= 2, timeout_s=20)
    released = set(held.values()) - on_ec2(ipamd)
    imds_view = ipamd_cloud.imds(ipamd.node).view()
    listed = {a for e in imds_view.enis for a in e.private_ips}
    assert released <= listed, "IMDS is stale: it still lists them"
    wait_until("ipamd to compare with IMDS and ask EC2",
               lambda: metric(ipamd, 'awscni_reconcile_count{fn="imds"}') >= 1)
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    for n in range(4):
        assert add_checked(ipamd, f"q{n}") not in released

    # A restart under the stale IMDS (aws #3887: ipamd handed out an EC2-unassigned address).
    ipamd.kill()
    ipamd.start()
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    for n in range(4, 8):
        assert add_checked(ipamd, f"q{n}") not in released


def test_removals_wait_for_ec2(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("t3.medium", {"VPCCNI_EC2_RECONCILE_PERIOD": "1"}, start=False)
    ipamd_cloud.imds(ipamd.node).set_stale(60.0)
    ipamd.start()
    for n in range(5):  # t3.medium: 5 pod addresses per ENI; these fill the primary
        add_checked(ipamd, f"p{n}")
    wait_until("a second ENI", lambda: len(ipamd.ec2_enis()) == 2)
    wait_until("the pool to settle", ipamd.pool_settled)
    second = ipamd.ec2_enis()[1]
    pod = add_checked(ipamd, "on-second")
    assert pod in second.private_ips

    # Someone detaches our second ENI behind ipamd's back; IMDS (stale) still shows it attached.
    ec2 = ipamd_cloud.client()
    ec2.detach_network_interface(AttachmentId=second.attachment_id, Force=True)
    assert second.eni_id in {e.eni_id for e in ipamd_cloud.imds(ipamd.node).view().enis}
    wait_until("EC2's word to remove the ENI", lambda: second.eni_id not in ipamd.datastore_cidrs())
    assert metric(ipamd, "awscni_force_removed_enis") == 1
    assert metric(ipamd, "awscni_force_removed_ips") == 1, "the pod on it lost its address, and it is counted"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    ec2.delete_network_interface(NetworkInterfaceId=second.eni_id)
