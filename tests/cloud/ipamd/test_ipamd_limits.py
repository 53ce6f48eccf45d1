"""Every way the pool can fail to grow is survived, and said: in the ADD's error, /v1/pool and
``vpccni status``. ipamd keeps running through each (a cloud error never stops it) and recovers once the
cause goes away.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.cli import main as vpccni_main
from vpccni.wire.protocol import ErrorKind, NoIpReason

__all__ = ["ipamd_cloud", "run_ipamd"]


def blocked(ipamd: Ipamd, reason: str) -> dict[str, Any] | None:
    current: dict[str, Any] | None = ipamd.pool()["blocked"]
    return current if current and current["reason"] == reason else None


def refused(ipamd: Ipamd, cid: str, reason: NoIpReason) -> str | None:
    answer = ipamd.add(cid)
    assert not answer.ok and answer.error is not None and answer.error.kind is ErrorKind.NO_IP, answer
    return str(answer.error.message) if answer.error.reason is reason else None


def status_screen(ipamd: Ipamd, capsys) -> str:
    capsys.readouterr()
    assert vpccni_main(["status", "--introspection", ipamd.paths.introspection]) == 0
    return str(capsys.readouterr().out)


def test_subnet_full_backs_off_and_says_so(run_ipamd, ipamd_cloud, capsys):
    # A /28 holds 11 addresses: the node's own, 9 for the primary ENI's pool, 1 left: no room for an ENI.
    vpc = ipamd_cloud.create_vpc("10.9.0.0/16")
    small = ipamd_cloud.create_subnet(vpc, "10.9.0.0/28")
    sg = ipamd_cloud.create_security_group(vpc, "small")
    ipamd = run_ipamd("m5.large", {"VPCCNI_SUBNET_FULL_BACKOFF": "60"}, subnet=small, security_groups=[sg])
    for n in range(9):
        ipamd.add_ok(f"p{n}")
    message = wait_until("ADD 10 to be refused for subnet full",
                         lambda: refused(ipamd, "p9", NoIpReason.SUBNET_FULL))
    assert "InsufficientFreeAddressesInSubnet" in message and small.subnet_id in message
    assert "VPCCNI_SUBNET_FULL_BACKOFF" in message
    assert "CANNOT GROW subnet_full" in status_screen(ipamd, capsys)
    assert ipamd.running

    # The back-off holds: many passes later, still the one CreateNetworkInterface attempt.
    ticks = ipamd.pool()["reconciler"]["ticks"]
    wait_until("10 more pool passes", lambda: ipamd.pool()["reconciler"]["ticks"] >= ticks + 10)
    assert ipamd.pool()["ec2_calls"]["CreateNetworkInterface"] == {"calls": 1, "errors": 1, "throttled": 0}
    assert [e.eni_id for e in ipamd.ec2_enis()] == [ipamd.node.primary_eni_id]


def test_eni_limit_from_ec2_is_resynced_and_the_refused_eni_deleted(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("t3.medium")  # 5 addresses per ENI: 4 for pods
    wait_until("the pool to settle", ipamd.pool_settled)
    ipamd_cloud.server.faults.inject("AttachNetworkInterface", "AttachmentLimitExceeded", count=1)
    for n in range(4):
        ipamd.add_ok(f"p{n}")
    last = wait_until("the refusal to be reported", lambda: ipamd.pool()["last_blocked"])
    assert last["reason"] == "eni_limit" and "AttachmentLimitExceeded" in last["message"]
    wait_until("a second ENI once EC2 accepts", lambda: len(ipamd.ec2_enis()) == 2)
    wait_until("the pool to settle", ipamd.pool_settled)
    assert 'awscni_reconcile_count{fn="resync"} 1' in ipamd.metrics(), "EC2 was asked after the refusal"
    ours = [e for e in ipamd_cloud.server.eni_views()
            if e.description == f"aws-K8S-{ipamd.node.instance_id}" and e.status == "available"]
    assert ours == [], "the ENI whose attach was refused was deleted, not leaked"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()


def test_throttling_is_reported_while_it_lasts_then_the_pool_fills(run_ipamd, ipamd_cloud, capsys):
    ipamd_cloud.server.faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded")
    ipamd = run_ipamd("m5.large")
    message = wait_until("ADD to be refused as throttled", lambda: refused(ipamd, "a", NoIpReason.THROTTLED))
    assert "throttled" in message
    wait_until("the pool to report throttling", lambda: blocked(ipamd, "throttled"))
    assert "CANNOT GROW throttled" in status_screen(ipamd, capsys)
    assert ipamd.pool()["ec2_throttled_total"] >= 5, "the provider retried before giving up"
    assert 'vpccni_ec2_throttled_calls_total{api="AssignPrivateIpAddresses"}' in ipamd.metrics()

    ipamd_cloud.server.faults.clear()
    ipamd.add_ok("a", timeout_s=30)
    pool = wait_until("the pool to settle", ipamd.pool_settled, timeout_s=30)
    # One pod on a full primary leaves 8 free < WARM_ENI_TARGET's 9: aws's second ENI.
    assert pool["totals"]["total"] == 18 and pool["last_blocked"]["reason"] == "throttled"
    assert pool["last_blocked"]["cleared_at"] is not None


def test_unauthorized_names_the_action_until_iam_is_fixed(run_ipamd, ipamd_cloud, capsys):
    ipamd_cloud.server.faults.inject("AssignPrivateIpAddresses", "UnauthorizedOperation",
                                     message="not authorized to perform: ec2:AssignPrivateIpAddresses")
    ipamd = run_ipamd("m5.large")
    message = wait_until("ADD to be refused as unauthorized",
                         lambda: refused(ipamd, "a", NoIpReason.UNAUTHORIZED))
    assert "AssignPrivateIpAddresses" in message and "IAM" in message
    pool = ipamd.pool()
    assert "AssignPrivateIpAddresses" in pool["unauthorized"]
    assert "CANNOT GROW unauthorized" in status_screen(ipamd, capsys)
    assert ipamd.running

    ipamd_cloud.server.faults.clear()
    ipamd.add_ok("a", also_wait_for=frozenset({NoIpReason.UNAUTHORIZED}))
    assert wait_until("the pool to settle", ipamd.pool_settled)["last_blocked"]["reason"] == "unauthorized"


def test_a_growth_refused_again_and_again_backs_off_instead_of_retrying_every_pass(run_ipamd, ipamd_cloud):
    ipamd_cloud.server.faults.inject("AssignPrivateIpAddresses", "UnauthorizedOperation")
    ipamd = run_ipamd("m5.large")  # pool pass every 0.1 s here: 40 refusals in 4 s without a back-off
    wait_until("ADD to be refused as unauthorized", lambda: refused(ipamd, "a", NoIpReason.UNAUTHORIZED))
    before = ipamd_cloud.server.counters()["AssignPrivateIpAddresses"].calls
    time.sleep(4.0)
    attempts = ipamd_cloud.server.counters()["AssignPrivateIpAddresses"].calls - before
    assert 1 <= attempts <= 3, f"{attempts} attempts in 4 s: back-off 2 s, 4 s, 8 s ... expected"
    assert "doubling while EC2 refuses" in str(refused(ipamd, "b", NoIpReason.UNAUTHORIZED))


def test_a_release_refused_again_and_again_backs_off_too(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("m5.large", {"WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "2",
                                   "VPCCNI_RELEASE_SPACING": "0"})
    for n in range(5):
        ipamd.add_ok(f"p{n}")
    ipamd_cloud.server.faults.inject("UnassignPrivateIpAddresses", "UnauthorizedOperation")
    for n in range(5):
        assert ipamd.delete(f"p{n}").ok
    wait_until("the release to be refused",
               lambda: "UnassignPrivateIpAddresses" in ipamd.pool()["unauthorized"] or None)
    before = ipamd_cloud.server.counters()["UnassignPrivateIpAddresses"].calls
    time.sleep(4.0)
    attempts = ipamd_cloud.server.counters()["UnassignPrivateIpAddresses"].calls - before
    # Pool pass every 0.1 s, no release spacing: a refusal retried every pass would be ~40.
    assert 1 <= attempts <= 3, f"{attempts} release attempts in 4 s: back-off 2 s, 4 s, 8 s ... expected"


def test_under_the_default_ec2_buckets_a_throttled_start_still_converges(run_ipamd, ipamd_cloud):
    # Another tenant of the account keeps the mutating bucket (AWS: 50, 5/s) empty while ipamd starts.
    vpc_id = ipamd_cloud.default_network()[0].vpc_id
    spammer = ipamd_cloud.client(retries={"total_max_attempts": 1})
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                spammer.create_tags(Resources=[vpc_id], Tags=[{"Key": "noise", "Value": "x"}])
            except Exception:  # throttled: that is the point
                time.sleep(0.001)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    try:
        ipamd = run_ipamd("m5.large")
        wait_until("ipamd to meet the throttle", lambda: ipamd.pool()["ec2_throttled_total"] > 0,
                   timeout_s=30)
    finally:
        stop.set()
        thread.join()
    for n in range(12):
        ipamd.add_ok(f"p{n}", timeout_s=60)
    pool = wait_until("the pool to settle", ipamd.pool_settled, timeout_s=60)
    assert pool["totals"]["total"] == 27 and len(ipamd.ec2_enis()) == 3, "aws's state for 12 pods"
    assert ipamd.datastore_cidrs() == ipamd.ec2_cidrs()
    assert ipamd.running


def test_provisioning_disabled_uses_what_is_attached_and_calls_no_mutation(run_ipamd, ipamd_cloud):
    ipamd = run_ipamd("m5.large", {"DISABLE_NETWORK_RESOURCE_PROVISIONING": "true"}, start=False)
    ipamd_cloud.client().assign_private_ip_addresses(NetworkInterfaceId=ipamd.node.primary_eni_id,
                                                     SecondaryPrivateIpAddressCount=2)
    ipamd.start()
    ipamd.add_ok("a")
    ipamd.add_ok("b")
    message = wait_until("the third ADD to be refused",
                         lambda: refused(ipamd, "c", NoIpReason.PROVISIONING_DISABLED))
    assert "DISABLE_NETWORK_RESOURCE_PROVISIONING" in message
    calls = ipamd.pool()["ec2_calls"]
    assert set(calls) <= {"DescribeInstances", "DescribeNetworkInterfaces", "DescribeSubnets"}, calls


def test_custom_networking_without_an_eniconfig_says_so(run_ipamd):
    ipamd = run_ipamd("m5.large", {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true"})
    message = wait_until("ADD to be refused", lambda: refused(ipamd, "a", NoIpReason.ENI_CONFIG_MISSING))
    assert "ENIConfig" in message
    pool = ipamd.pool()
    assert pool["capacity"]["primary_serves_pods"] is False
    assert pool["totals"]["total"] == 0, "the primary ENI carries no pods under custom networking"
    assert pool["capacity"]["max_pods"] == 2 * 9 + 2, "max pods counts ENIs - 1"


def test_subnet_discovery_picks_the_tagged_subnet_with_most_room(run_ipamd, ipamd_cloud):
    vpc = ipamd_cloud.create_vpc("10.20.0.0/16")
    node_subnet = ipamd_cloud.create_subnet(vpc, "10.20.0.0/24")
    roomy = ipamd_cloud.create_subnet(vpc, "10.20.16.0/20", tags={"kubernetes.io/role/cni": "1"})
    ipamd_cloud.create_subnet(vpc, "10.20.64.0/18", tags={"kubernetes.io/role/cni": "0"})
    ipamd_cloud.create_subnet(vpc, "10.20.128.0/18", tags={"kubernetes.io/role/cni": "1",
                                                           "cni.networking.k8s.aws/cluster/other": "1"})
    ipamd_cloud.create_subnet(vpc, "10.20.32.0/19", az=f"{ipamd_cloud.region}b",
                              tags={"kubernetes.io/role/cni": "1"})
    sg = ipamd_cloud.create_security_group(vpc, "discovery")
    ipamd = run_ipamd("t3.medium", {"CLUSTER_NAME": "lab"}, subnet=node_subnet, security_groups=[sg])
    for n in range(4):
        ipamd.add_ok(f"p{n}")
    wait_until("a second ENI", lambda: len(ipamd.ec2_enis()) == 2)
    second = ipamd.ec2_enis()[1]
    assert second.subnet_id == roomy.subnet_id, "most free among the node's zone, tagged, not excluded, ours"
    assert sg in second.security_group_ids, "the primary ENI's security groups"
