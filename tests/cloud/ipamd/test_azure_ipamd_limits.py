"""Every way the pool can fail to grow on Azure is survived and said — in the ADD's error, /v1/pool and
``vpccni status`` — as on AWS (tests/cloud/ipamd/test_ipamd_limits.py): a full subnet (after a batch no
longer fits, one address per write takes what is left), ARM's IP-configuration limit, throttling, a
missing role permission (named as the ARM action), and a NIC another writer keeps changing. ipamd keeps
running through each and recovers once the cause goes away.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cloud.ipamd.azure_harness import AzureIpamd, ipamd_azure, run_azure_ipamd
from tests.cloud.ipamd.ipamd_harness import wait_until
from tests.cloud.ipamd.test_ipamd_limits import refused, status_screen
from vpccni.localcloud.azure import ArmLimits, RoleDefinition
from vpccni.wire.protocol import NoIpReason

__all__ = ["ipamd_azure", "run_azure_ipamd"]

ROLE = json.loads((Path(__file__).resolve().parents[3] / "iam" / "vpccni-azure-role.json").read_text())
WRITE = "Microsoft.Network/networkInterfaces/write"


def puts(ipamd: AzureIpamd) -> dict[str, int]:
    return dict(ipamd.pool()["ec2_calls"].get("PutNetworkInterface", {"calls": 0, "errors": 0}))


def test_a_full_subnet_takes_its_last_addresses_one_by_one_then_backs_off(run_azure_ipamd, ipamd_azure,
                                                                           capsys):
    # A /27 holds 27 usable addresses: the VM's own, a first batch of 16, then 10 that no batch fits.
    tiny = ipamd_azure.create_subnet("10.225.0.0/27", name="tiny")
    ipamd = run_azure_ipamd("Standard_D4s_v5", {"VPCCNI_SUBNET_FULL_BACKOFF": "30"}, subnet_id=tiny)
    wait_until("the first batch", lambda: ipamd.ip_configurations() == 16)
    # While the last addresses come one per write an ADD may be told "subnet full, growing one by one".
    held = [ipamd.add_ok(f"p{n}", also_wait_for=frozenset({NoIpReason.SUBNET_FULL})) for n in range(26)]
    assert len(set(held)) == 26
    message = wait_until("ADD 27 to be refused for subnet full",
                         lambda: refused(ipamd, "p26", NoIpReason.SUBNET_FULL))
    assert "ARM SubnetIsFull on PutNetworkInterface" in message and "VPCCNI_SUBNET_FULL_BACKOFF" in message
    assert ipamd.ip_configurations() == 26, "every address of the subnet reached a pod"
    calls = puts(ipamd)
    # 1 batch + 10 single addresses succeeded; refused: the batch that no longer fitted, then one address.
    assert calls["calls"] - calls["errors"] == 11 and calls["errors"] == 2, calls
    assert "CANNOT GROW subnet_full" in status_screen(ipamd, capsys)
    ticks = ipamd.pool()["reconciler"]["ticks"]
    wait_until("10 more pool passes", lambda: ipamd.pool()["reconciler"]["ticks"] >= ticks + 10)
    assert puts(ipamd) == calls, "the back-off holds: no write per pass"
    assert ipamd.running and ipamd.datastore_cidrs() == ipamd.cloud_cidrs()


def test_arms_ip_configuration_limit_is_resynced_and_said(run_azure_ipamd, ipamd_azure):
    ipamd_azure.state.limits = ArmLimits(ip_configs_per_vm=20)  # as if other NICs of the VM held the rest
    try:
        ipamd = run_azure_ipamd("Standard_D4s_v5")
        for n in range(9):
            ipamd.add_ok(f"p{n}")
        last = wait_until("the refusal", lambda: ipamd.pool()["last_blocked"])
        assert last["reason"] == "eni_limit" and "PrivateIPAddressLimitExceeded" in last["message"]
        wait_until("ARM to be asked after the refusal",
                   lambda: 'awscni_reconcile_count{fn="resync"}' in ipamd.metrics())
        assert ipamd.running and ipamd.ip_configurations() == 16
        assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs()
    finally:
        ipamd_azure.state.limits = ArmLimits()


def test_throttling_is_reported_while_it_lasts_then_the_pool_fills(run_azure_ipamd, ipamd_azure, capsys):
    ipamd_azure.faults.inject("PutNetworkInterface", "SubscriptionRequestsThrottled", status=429)
    ipamd = run_azure_ipamd("Standard_D4s_v5")
    message = wait_until("ADD to be refused as throttled", lambda: refused(ipamd, "a", NoIpReason.THROTTLED))
    assert "throttled" in message
    assert "CANNOT GROW throttled" in status_screen(ipamd, capsys)
    assert ipamd.pool()["ec2_throttled_total"] >= 3, "the provider retried, waiting out Retry-After"
    ipamd_azure.faults.clear()
    ipamd.add_ok("a", timeout_s=60)
    pool = wait_until("the pool to settle", ipamd.pool_settled, timeout_s=30)
    assert pool["totals"]["total"] == 16 and pool["last_blocked"]["reason"] == "throttled"


def test_a_missing_role_permission_names_the_arm_action_until_it_is_granted(run_azure_ipamd, ipamd_azure,
                                                                            capsys):
    vm = ipamd_azure.add_vm("Standard_D4s_v5")
    scope = f"/subscriptions/{ipamd_azure.subscription_id}/resourceGroups/{vm.resource_group}"
    without_write = RoleDefinition.from_json({**ROLE, "Actions": [a for a in ROLE["Actions"] if a != WRITE]})
    ipamd_azure.set_role(vm, without_write, scope=scope)
    ipamd = run_azure_ipamd(vm=vm)
    message = wait_until("ADD to be refused as unauthorized",
                         lambda: refused(ipamd, "a", NoIpReason.UNAUTHORIZED))
    assert "AuthorizationFailed" in message and WRITE in message
    assert "ARM refused PutNetworkInterface: missing role permission" in message
    assert "PutNetworkInterface" in ipamd.pool()["unauthorized"]
    assert "CANNOT GROW unauthorized" in status_screen(ipamd, capsys)
    # The MissingIAMPermissions hook names the ARM action (logged here: no Kubernetes API).
    assert f"the cloud refused {WRITE}: missing permission" in ipamd.log(200)
    ipamd_azure.set_role(vm, RoleDefinition.from_json(ROLE), scope=scope)
    ipamd.add_ok("a", timeout_s=30, also_wait_for=frozenset({NoIpReason.UNAUTHORIZED}))
    assert ipamd.running and ipamd.datastore_cidrs() == ipamd.cloud_cidrs()


def test_a_nic_another_writer_keeps_changing_resolves_on_a_later_pass(run_azure_ipamd, ipamd_azure):
    # Five 412s in a row spend the provider's conflict attempts: CloudConflict, retried by the next pass.
    ipamd_azure.faults.inject("PutNetworkInterface", "PreconditionFailed", status=412, count=5)
    ipamd = run_azure_ipamd("Standard_D4s_v5")
    pool: dict[str, Any] = wait_until("the pool to settle", ipamd.pool_settled, timeout_s=30)
    assert pool["totals"]["total"] == 16 and pool["last_blocked"]["reason"] == "cloud_error"
    assert "PreconditionFailed" in pool["last_blocked"]["message"]
    assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs()
