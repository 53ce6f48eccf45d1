"""The seeded workload of the kill -9 tests, shared by the AWS and Azure tiers: waves of pod arrivals and
departures against one ipamd until an armed crash point kills it, a ledger of what ipamd answered, and the
checks after each restart.

* no key lost: every ADD that got an answer, and was not DELeted since, still holds its address (a
  repeated ADD is idempotent and must return it);
* no address handed out twice: no ADD ever answers with an address another live key holds;
* the datastore is the cloud: once the pool settles, every address the cloud shows on our interfaces is
  assigned to a live key or free/cooling in the pool, and the pool holds nothing else (so no address, or
  Azure IP configuration, is leaked by a crash).

Requests in flight when ipamd died got no answer; they are repeated after the restart, as kubelet does.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from tests.cloud.ipamd.ipamd_harness import IpamdUnderTest, wait_until
from vpccni.testing.ipamd_process import IpamdExited
from vpccni.wire.client import IpamdUnreachable


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


def add(ipamd: IpamdUnderTest, ledger: Ledger, key: str) -> bool:
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


def delete(ipamd: IpamdUnderTest, ledger: Ledger, key: str) -> bool:
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


def drive_until_it_dies(ipamd: IpamdUnderTest, ledger: Ledger, peak_pods: int,
                        timeout_s: float = 40.0) -> None:
    """Waves of arrivals and departures (seeded, up to ``peak_pods``) until ipamd dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        peak = ledger.rng.randint(peak_pods - 2, peak_pods)
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


def start_or_crash(ipamd: IpamdUnderTest, crash: str | None) -> bool:
    """Start ipamd; False if the armed point fired during startup (ipamd died before ready)."""
    try:
        ipamd.start(crash=crash)
    except IpamdExited:
        assert ipamd.process is not None and ipamd.process.wait(5) == -9, ipamd.log()
        return False
    return True


def resolve_and_check(ipamd: IpamdUnderTest, ledger: Ledger) -> None:
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
    cloud_cidrs = ipamd.cloud_cidrs()
    assert pool_cidrs == cloud_cidrs, f"datastore {pool_cidrs} != cloud {cloud_cidrs}"
    assigned = ipamd.pool()["totals"]["assigned"]
    assert assigned == len(ledger.held), f"ipamd holds {assigned} assignments, the workload knows of " \
        f"{len(ledger.held)}"
    in_cloud = {c[:-3] for cidrs in cloud_cidrs.values() for c in cidrs}
    assert set(ledger.held.values()) <= in_cloud
