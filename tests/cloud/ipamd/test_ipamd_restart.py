"""kill -9 in the middle of assign, release, grow and shrink; restart; nothing is lost, leaked or doubled.

One ipamd is crashed again and again, each time at an armed crash point (``VPCCNI_TEST_CRASH_AT``): in
the reconciler between two EC2 calls of one change and between EC2 and the datastore, in the EC2 sync,
and in the server between the durable commit and the reply. A seeded workload drives it in waves of pod
arrivals and departures (so it grows, fills, releases and frees ENIs) until the crash point fires. After
each restart:

* the checks of :mod:`tests.cloud.ipamd.crash_workload` (no key lost, no address handed out twice, the
  datastore is EC2 once the pool settles), which the Azure tier shares;
* every ENI we attached has DeleteOnTermination;
* an ENI left detached by a crash (after create, after detach) is deleted by the leaked-ENI sweep.
"""

from __future__ import annotations

import random

from ipamd.state.crashpoints import POINTS
from tests.cloud.ipamd.crash_workload import Ledger, drive_until_it_dies, resolve_and_check, start_or_crash
from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until

__all__ = ["ipamd_cloud", "run_ipamd"]

SEED = 20240611
RUNS = 22  # every point at least once, then seeded extra ones
CRASH_SETTINGS = {
    "WARM_IP_TARGET": "2",
    "IP_COOLDOWN_PERIOD": "0.3",
    "VPCCNI_RELEASE_SPACING": "0.2",
    "VPCCNI_MIN_ENI_AGE": "0.3",
    "VPCCNI_EC2_RECONCILE_PERIOD": "0.5",
    "DISABLE_LEAKED_ENI_CLEANUP": "false",
    "VPCCNI_LEAKED_ENI_GC_INTERVAL": "0.5",
    "VPCCNI_LEAKED_ENI_GC_GRACE": "0",
}
PEAK_PODS = 8  # t3.small: 3 pod addresses per ENI, so a wave needs all 3 ENIs


def every_eni_has_delete_on_termination(ipamd: Ipamd) -> None:
    for eni in ipamd.ec2_enis()[1:]:
        assert eni.delete_on_termination, f"{eni.eni_id} attached without DeleteOnTermination"


def test_kill_9_at_seeded_points_loses_leaks_and_doubles_nothing(run_ipamd, ipamd_cloud):
    rng = random.Random(SEED)
    points = sorted(POINTS)
    plan = [(p, rng.randint(1, 3)) for p in points]
    plan += [(rng.choice(points), rng.randint(1, 4)) for _ in range(RUNS - len(plan))]
    assert len(plan) >= 20
    ledger = Ledger(random.Random(SEED + 1))
    ipamd = run_ipamd("t3.small", CRASH_SETTINGS, start=False)
    fired: list[str] = []
    for point, nth in plan:
        crash = f"{point}:{nth}"
        if start_or_crash(ipamd, crash):
            drive_until_it_dies(ipamd, ledger, PEAK_PODS)
        assert ipamd.process is not None
        assert ipamd.process.wait(10) == -9, f"{crash}: not a SIGKILL\n{ipamd.log()}"
        fired.append(crash)
        ipamd.start()
        resolve_and_check(ipamd, ledger)
        every_eni_has_delete_on_termination(ipamd)
        ipamd.kill()
    assert len(fired) == len(plan)
    assert ledger.answers > 100, "the workload made enough requests to mean something"

    ipamd.start()
    resolve_and_check(ipamd, ledger)
    every_eni_has_delete_on_termination(ipamd)

    def leaked() -> list[str]:
        mine = f"aws-K8S-{ipamd.node.instance_id}"
        return [e.eni_id for e in ipamd_cloud.server.eni_views()
                if e.description == mine and e.status == "available"]

    wait_until("the sweep to delete ENIs left detached by crashes", lambda: not leaked(), timeout_s=20)
