"""kill -9 in the middle of assign, release, grow and shrink; restart; nothing is lost, leaked or doubled.

One ipamd is crashed again and again, each time at an armed crash point (``VPCCNI_TEST_CRASH_AT``): in
the reconciler between two EC2 calls of one change and between EC2 and the datastore, in the EC2 sync,
and in the server between the durable commit and the reply. A seeded workload drives it in waves of pod
arrivals and departures (so it grows, fills, releases and frees ENIs) until the crash point fires. After
each restart:

* no key lost: every ADD that got an answer, and was not DELeted since, still holds its address (a
  repeated ADD is idempotent and must return it);
* no address handed out twice: no ADD ever answers with an address another live key holds;
* the datastore is EC2: once the pool settles, every address EC2 shows on our ENIs is assigned to a live
  key or free/cooling in the pool, and the pool holds nothing else; every ENI we attached has
  DeleteOnTermination;
* an ENI left detached by a crash (after create, after detach) is deleted by the leaked-ENI sweep.

Requests in flight when ipamd died got no answer; they are repeated after the restart, as kubelet does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from ipamd.state.crashpoints import POINTS
from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.testing.ipamd_process import IpamdExited
from vpccni.wire.client import IpamdUnreachable

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


@dataclass
class Ledger:
    """What the workload knows from ipamd's answers."""

    rng: random.Random
    held: dict[str, str] = field(default_factory=dict)  # key -> address, from an ok ADD, not DELeted since
    in_flight: tuple[str, str] | None = None  # (op, key) sent without an answer
    next_key: int = 0
    answers: int = 0

    def fresh_key(self) -> str:
        self.next_key += 1
        return f"pod{self.next_key}"

    def record_add(self, key: str, address: str) -> None:
        owner = next((k for k, a in self.held.items() if a == address and k != key), None)
        assert owner is None, f"{address} handed to {key} while {owner} holds it"
        if key in self.held:
            assert self.held[key] == address, f"{key} held {self.held[key]}, a repeated ADD gave {address}"
        self.held[key] = address


def add(ipamd: Ipamd, ledger: Ledger, key: str) -> bool:
    """One ADD; False if ipamd died under it."""
    ledger.in_flight = ("ADD", key)
    try:
        answer = ipamd.add(key)
    except IpamdUnreachable:
        return False
    ledger.in_flight = None
    ledger.answers += 1
    if answer.ok and answer.allocation is not None:
        ledger.record_add(key, answer.allocation.ipv4)
    return True


def delete(ipamd: Ipamd, ledger: Ledger, key: str) -> bool:
    ledger.in_flight = ("DEL", key)
    try:
        answer = ipamd.delete(key)
    except IpamdUnreachable:
        return False
    ledger.in_flight = None
    ledger.answers += 1
    assert answer.ok, answer
    ledger.held.pop(key, None)
    return True


def drive_until_it_dies(ipamd: Ipamd, ledger: Ledger, timeout_s: float = 40.0) -> None:
    """Waves of arrivals and departures (seeded) until ipamd dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        peak = ledger.rng.randint(PEAK_PODS - 2, PEAK_PODS)
        while len(ledger.held) < peak:
            if not add(ipamd, ledger, ledger.fresh_key()):
                return
            time.sleep(ledger.rng.uniform(0, 0.05))
        time.sleep(0.3)
        for key in ledger.rng.sample(sorted(ledger.held), len(ledger.held)):
            if not delete(ipamd, ledger, key):
                return
            time.sleep(ledger.rng.uniform(0, 0.05))
        time.sleep(0.8)  # cooldown, release spacing, ENI age, an EC2 sync: the shrink side runs here
        if not ipamd.running:
            return
    raise AssertionError(f"the armed crash point never fired in {timeout_s}s:\n{ipamd.log()}")


def start_or_crash(ipamd: Ipamd, crash: str | None) -> bool:
    """Start ipamd; False if the armed point fired during startup (ipamd died before ready)."""
    try:
        ipamd.start(crash=crash)
    except IpamdExited:
        assert ipamd.process is not None and ipamd.process.wait(5) == -9, ipamd.log()
        return False
    return True


def resolve_and_check(ipamd: Ipamd, ledger: Ledger) -> None:
    """After a restart: finish the request that died in flight, then check every invariant."""
    if ledger.in_flight is not None:
        op, key = ledger.in_flight
        assert (add if op == "ADD" else delete)(ipamd, ledger, key), "ipamd died again without a crash point"
        if op == "ADD" and key not in ledger.held:  # the pool may still be filling after the restart
            address = ipamd.add_ok(key)
            ledger.record_add(key, address)
    for key, address in list(ledger.held.items()):
        answer = ipamd.add(key)
        assert answer.ok and answer.allocation is not None, f"{key} lost: {answer}"
        got = answer.allocation.ipv4
        assert got == address, f"{key} held {address}, after the restart {got}"
    wait_until("the pool to settle", ipamd.pool_settled, timeout_s=30)
    pool_cidrs = ipamd.datastore_cidrs()
    ec2_cidrs = ipamd.ec2_cidrs()
    assert pool_cidrs == ec2_cidrs, f"datastore {pool_cidrs} != EC2 {ec2_cidrs}"
    assigned = ipamd.pool()["totals"]["assigned"]
    assert assigned == len(ledger.held), f"ipamd holds {assigned} assignments, the workload knows of " \
        f"{len(ledger.held)}"
    on_ec2 = {c[:-3] for cidrs in ec2_cidrs.values() for c in cidrs}
    assert set(ledger.held.values()) <= on_ec2
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
            drive_until_it_dies(ipamd, ledger)
        assert ipamd.process is not None
        assert ipamd.process.wait(10) == -9, f"{crash}: not a SIGKILL\n{ipamd.log()}"
        fired.append(crash)
        ipamd.start()
        resolve_and_check(ipamd, ledger)
        ipamd.kill()
    assert len(fired) == len(plan)
    assert ledger.answers > 100, "the workload made enough requests to mean something"

    ipamd.start()
    resolve_and_check(ipamd, ledger)

    def leaked() -> list[str]:
        mine = f"aws-K8S-{ipamd.node.instance_id}"
        return [e.eni_id for e in ipamd_cloud.server.eni_views()
                if e.description == mine and e.status == "available"]

    wait_until("the sweep to delete ENIs left detached by crashes", lambda: not leaked(), timeout_s=20)
