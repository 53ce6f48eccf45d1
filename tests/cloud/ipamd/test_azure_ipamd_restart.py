"""kill -9 in the middle of a NIC write and of a release on Azure; restart; nothing is lost, leaked or
doubled — the AWS tier's test (tests/cloud/ipamd/test_ipamd_restart.py) on the local Azure, with the same
seeded workload and checks (tests/cloud/ipamd/crash_workload.py).

The crash points are those an Azure node reaches: around the NIC write that adds a batch, around the
write that gives addresses back, after the ARM read of a sync, and in the server between the durable
commit and the reply (the interface points are never reached: a VM's NICs are fixed). After every restart
the datastore equals ARM's IP configurations, so no IP configuration is leaked: one a crash left on the
NIC unrecorded is adopted as free, and the pool gives it back in a batch once it is surplus.
"""

from __future__ import annotations

import random

from tests.cloud.ipamd.azure_harness import ipamd_azure, run_azure_ipamd
from tests.cloud.ipamd.crash_workload import Ledger, drive_until_it_dies, resolve_and_check, start_or_crash
from tests.cloud.ipamd.ipamd_harness import wait_until

__all__ = ["ipamd_azure", "run_azure_ipamd"]

SEED = 20240612
AZURE_POINTS = ("grow.assign.before_ec2", "grow.assign.after_ec2", "shrink.release.after_datastore",
                "shrink.release.after_ec2", "sync.after_describe", "server.after_commit",
                "server.add.before_reply", "server.del.before_release")
RUNS = 12
CRASH_SETTINGS = {
    "WARM_IP_TARGET": "2",
    "VPCCNI_IP_BATCH": "4",  # small batches: the workload grows and releases a batch every wave
    "IP_COOLDOWN_PERIOD": "0.3",
    "VPCCNI_RELEASE_SPACING": "0.2",
    "VPCCNI_EC2_RECONCILE_PERIOD": "0.5",
}
PEAK_PODS = 10


def test_kill_9_at_seeded_points_loses_leaks_and_doubles_nothing(run_azure_ipamd):
    rng = random.Random(SEED)
    plan = [(p, rng.randint(1, 2)) for p in AZURE_POINTS]
    plan += [(rng.choice(AZURE_POINTS), rng.randint(1, 3)) for _ in range(RUNS - len(plan))]
    ledger = Ledger(random.Random(SEED + 1))
    ipamd = run_azure_ipamd("Standard_D4s_v5", CRASH_SETTINGS, start=False)
    for point, nth in plan:
        crash = f"{point}:{nth}"
        if start_or_crash(ipamd, crash):
            drive_until_it_dies(ipamd, ledger, PEAK_PODS)
        assert ipamd.process is not None
        assert ipamd.process.wait(10) == -9, f"{crash}: not a SIGKILL\n{ipamd.log()}"
        ipamd.start()
        resolve_and_check(ipamd, ledger)
        ipamd.kill()
    assert ledger.answers > 60, "the workload made enough requests to mean something"

    ipamd.start()
    resolve_and_check(ipamd, ledger)
    for key in list(ledger.held):
        assert ipamd.delete(key).ok
    # Everything gone: the NIC keeps only what the targets ask for (2 free, in batches of 4), nothing else.
    wait_until("the pool to shrink to its targets", lambda: (p := ipamd.pool_settled()) and
               p["totals"]["assigned"] == 0 and p["totals"]["total"] <= 6)
    assert ipamd.datastore_cidrs() == ipamd.cloud_cidrs()
