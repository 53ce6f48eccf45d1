"""'Why no IP' from a real ipamd in the two states it used to misreport (issue #12, item 7).

* EC2 hangs: the local cloud holds every AssignPrivateIpAddresses without answering, right after a short
  throttling burst. ADDs that find no address say so, naming the call and how long it has been under way,
  not "the pool is being topped up" nor "throttled" with the burst's count; ipamd logs it while it hangs.
* Every address cooling at the ENI limit: a t3.nano with MAX_ENI=1 has one pod address; once its pod is
  deleted the address cools down for IP_COOLDOWN_PERIOD. Every ADD meanwhile is told so (transient), with
  when the address comes back -- never "eni_limit", which asks an operator to act.
"""

from __future__ import annotations

import time
from collections import Counter

from tests.cloud.ipamd.ipamd_harness import ipamd_cloud, run_ipamd, wait_until
from vpccni.localcloud import LocalCloud
from vpccni.wire.protocol import ErrorKind, NoIpReason, Response

__all__ = ["ipamd_cloud", "run_ipamd"]

HANG_S = 30.0  # longer than HTTP_TIMEOUT (10 s): each attempt ends in a read timeout and is sent again
# The reasons as they travel on the wire (NoIpReason members are these strings): compared by value, the
# test fails the same way against an ipamd that predates them, on what it answers instead.
CLOUD_SLOW, COOLING = "cloud_slow", "cooling"


def no_ip(answer: Response) -> tuple[str, str]:
    """(reason, message) of an ADD that found no address."""
    assert not answer.ok and answer.error is not None and answer.error.kind is ErrorKind.NO_IP, answer
    return str(answer.error.reason), answer.error.message


def test_an_ec2_call_that_hangs_is_named_with_its_age_and_logged(run_ipamd, ipamd_cloud: LocalCloud):
    ipamd = run_ipamd("m5.large", {"WARM_IP_TARGET": "1"})
    wait_until("the pool to settle", ipamd.pool_settled)
    faults = ipamd_cloud.server.faults
    faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded", count=2)
    faults.inject("AssignPrivateIpAddresses", "InternalError", timeout_s=HANG_S)
    free = ipamd.pool()["totals"]["free"]
    for n in range(free):  # the warm address(es): the pool then asks EC2 for more, and EC2 hangs
        assert ipamd.add(f"warm{n}").ok

    seen: list[tuple[str, str]] = []
    deadline = time.monotonic() + 20
    while not seen or seen[-1][0] != CLOUD_SLOW:
        assert time.monotonic() < deadline, (
            f"no ADD reported the hanging call in 20s: {Counter(r for r, _ in seen)}; last: {seen[-1]}")
        time.sleep(0.25)
        seen.append(no_ip(ipamd.add("waiting")))
    reason, message = seen[-1]
    assert "EC2 AssignPrivateIpAddresses, under way for " in message, message
    assert "longer than expected (5s)" in message, message
    assert "topped up" not in message
    later = [no_ip(ipamd.add("waiting")) for _ in range(4)]
    assert {r for r, _ in later} == {CLOUD_SLOW}, later
    # The burst is "throttled" while the call waits to retry; once the hanging attempt is out, never again.
    reasons = [r for r, _ in seen]
    after = len(reasons) - reasons[::-1].index(NoIpReason.THROTTLED) if NoIpReason.THROTTLED in reasons else 0
    assert set(reasons[after:]) == {NoIpReason.GROWING, CLOUD_SLOW}, reasons
    def hang_logged() -> list[str] | None:
        lines = ipamd.log(400).splitlines()
        return [line for line in lines if "AssignPrivateIpAddresses, under way for" in line] or None

    logged = wait_until("ipamd to log the hanging call", hang_logged)
    print(f"\nADD answered: {message}\nipamd logged: {logged[0]}")  # for whoever reads the test log

    faults.clear()  # EC2 answers again: the attempt after the one hanging now gets the address
    ipamd.add_ok("waiting", timeout_s=HANG_S + 20,
                 also_wait_for=frozenset({NoIpReason(CLOUD_SLOW), NoIpReason.CLOUD_ERROR}))


def test_every_address_cooling_at_the_eni_limit_is_transient_and_says_when(run_ipamd):
    ipamd = run_ipamd("t3.nano", {"MAX_ENI": "1", "IP_COOLDOWN_PERIOD": "30"})
    wait_until("the pool to settle", ipamd.pool_settled)
    assert ipamd.pool()["totals"]["total"] == 1, "t3.nano, one ENI: one pod address"
    ipamd.add_ok("first")
    assert ipamd.delete("first").ok
    answers = []
    for n in range(8):  # every ADD in this state gets the same answer
        answers.append(no_ip(ipamd.add(f"next{n}")))
        time.sleep(0.25)
    assert {reason for reason, _ in answers} == {COOLING}, answers
    message = answers[-1][1]
    assert "1 released address(es) come back after IP_COOLDOWN_PERIOD=30s" in message, message
    assert "the first in 2" in message, message  # 30 s minus the ~2 s of the loop above
    assert "until then: every ENI is full" in message, message
    print(f"\nADD answered: {message}")
