"""ipamd (a real process, VPCCNI_CLOUD=azure) against the local Azure: the pool grows and shrinks by IP
configurations on the NICs the VM booted with, in whole batches, one NIC write per step.

Standard_D4s_v5 with one NIC: 256 IP configurations, the first the node's own, max pods 250. Azure's
defaults: WARM_IP_TARGET=8, VPCCNI_IP_BATCH=16, so a fresh node holds 16 addresses after one NIC write,
and a burst of pods costs one write per batch of 16 (Azure CNS's batch), not one per pod. What ARM holds
is the truth checked after every scenario: the datastore's addresses are exactly the NIC's secondary IP
configurations.
"""

from __future__ import annotations

import time

from tests.cloud.ipamd.azure_harness import AzureIpamd, ipamd_azure, run_azure_ipamd
from tests.cloud.ipamd.ipamd_harness import wait_until
from vpccni.cli import main as vpccni_main

__all__ = ["ipamd_azure", "run_azure_ipamd"]

CALLS_ON_AZURE = {"GetVirtualMachine", "GetNetworkInterface", "GetSubnet", "GetVirtualNetwork",
                  "PutNetworkInterface"}


def writes(ipamd: AzureIpamd) -> int:
    """NIC PUTs ipamd made, as its own call observer counted them."""
    return int(ipamd.pool()["ec2_calls"].get("PutNetworkInterface", {}).get("calls", 0))


def test_a_fresh_vm_settles_at_one_batch_after_one_nic_write(run_azure_ipamd):
    ipamd = run_azure_ipamd("Standard_D4s_v5")
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    assert pool["totals"] == {"enis": 1, "total": 16, "free": 16, "assigned": 0, "cooling": 0, "prefixes": 0}
    assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs(), "exactly ARM's IP configurations"
    assert writes(ipamd) == 1, "one NIC write for the whole batch"
    assert set(pool["ec2_calls"]) <= CALLS_ON_AZURE, "no interface was created, attached or tagged"
    assert pool["capacity"]["max_pods"] == 250 and pool["leaked_eni_gc"] is None

    ticks = pool["reconciler"]["ticks"]
    wait_until("20 more pool passes", lambda: ipamd.pool()["reconciler"]["ticks"] >= ticks + 20)
    assert writes(ipamd) == 1 and ipamd.ip_configurations() == 16
    assert ipamd.status().ok


def test_a_burst_of_pods_costs_one_nic_write_per_batch_and_leaves_in_batches(run_azure_ipamd):
    ipamd = run_azure_ipamd("Standard_D4s_v5")
    wait_until("the pool to settle", ipamd.pool_settled)
    started, before = time.monotonic(), writes(ipamd)
    held = {f"pod{n}": ipamd.add_ok(f"pod{n}") for n in range(40)}
    burst_s = time.monotonic() - started
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    assert len(set(held.values())) == 40, "no address handed out twice"
    # Azure CNS's pool for 40 in use: 16 x ceil(0.5 + 40/16) = 48, reached in whole batches.
    assert pool["totals"]["total"] == 48 and pool["totals"]["assigned"] == 40
    assert writes(ipamd) - before == 2, "two more batches of 16, one NIC write each"
    assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs()
    print(f"\n40 pods: {writes(ipamd) - before} NIC writes after the first batch, in {burst_s:.2f}s")

    before = writes(ipamd)
    for key in held:
        assert ipamd.delete(key).ok
    pool = wait_until("the pool to shrink back", lambda: (p := ipamd.pool_settled()) and
                      p["totals"]["total"] == 16 and p)
    # Two batches go back: in one write, or in two when the DELs' cooldowns end on both sides of a pass.
    assert writes(ipamd) - before in (1, 2), "whole batches given back, one NIC write each at most"
    assert ipamd.cloud_cidrs() == ipamd.datastore_cidrs() and ipamd.ip_configurations() == 16


def test_a_second_nic_is_adopted_untouched_and_grows_only_past_the_first(run_azure_ipamd):
    ipamd = run_azure_ipamd("Standard_D8s_v5", nics=2)
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    assert pool["totals"]["enis"] == 2 and pool["totals"]["total"] == 16
    primary, second = ipamd.vm.nic_ids
    assert len(ipamd.cloud_cidrs()[primary]) == 16 and ipamd.cloud_cidrs()[second] == set()
    assert writes(ipamd) == 1, "no tag, no write on the NIC it does not need yet"
    assert pool["capacity"]["max_pods"] == 250, "256 per VM less 2 primaries = 254, capped at 250"


def test_vpccni_status_on_azure(run_azure_ipamd, capsys):
    ipamd = run_azure_ipamd("Standard_D4s_v5")
    wait_until("the pool to settle", ipamd.pool_settled)
    ipamd.add_ok("a")
    assert vpccni_main(["status", "--introspection", ipamd.paths.introspection]) == 0
    screen = capsys.readouterr().out
    assert "Standard_D4s_v5" in screen and "max pods 250" in screen
    assert ipamd.vm.nic_ids[0] in screen
    total_row = next(line for line in screen.splitlines() if line.startswith("total"))
    assert total_row.split()[1:4] == ["15", "1", "0"], total_row  # free, assigned, cooling


def test_max_pods_stops_the_pool_and_says_so(run_azure_ipamd):
    ipamd = run_azure_ipamd("Standard_D4s_v5", {"VPCCNI_MAX_PODS": "20"})
    for n in range(20):
        ipamd.add_ok(f"p{n}")
    pool = wait_until("the pool to settle", ipamd.pool_settled)
    assert pool["totals"]["total"] == 20, "the last batch is cut at max pods"
    answer = ipamd.add("p20")
    assert not answer.ok and answer.error is not None and answer.error.reason == "max_pods"
    assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs()
