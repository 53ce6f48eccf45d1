"""The node policy (iam/vpccni-node-policy.json) is sufficient, and every action in it is necessary.

ipamd runs as a real process (tests/cloud/ipamd/ipamd_harness.py) against the local cloud in IAM mode, signing
with the keys of an IAM user that holds only the policy. Its whole life, step by step:

    start      ready                                  Describe Instances, InstanceTypes, NetworkInterfaces,
                                                      Subnets
    grow       9 pods fill the primary ENI            AssignPrivateIpAddresses
    new ENI    an ENI is added, a 10th pod lands on   CreateNetworkInterface (+ CreateTags: it carries
               it                                     tags), AttachNetworkInterface, DeleteOnTermination
    shrink     the 10th pod leaves: a spare goes      UnassignPrivateIpAddresses
               back to EC2
    free ENI   the 9 others leave: the new ENI goes   DetachNetworkInterface, DeleteNetworkInterface
    leaked GC  two available ENIs of ours, one        DescribeNetworkInterfaces, CreateTags (dating),
               undated                                DeleteNetworkInterface

The node is of an instance type EC2 knows but vpccni's bundled table does not (one launched after this
release), so ipamd learns its limits from DescribeInstanceTypes, the one call a known type never makes.

With the full policy every step passes and EC2 refuses nothing. Then, once per action, the same life
with that action removed from the policy stops at the step that needs it, EC2 refused exactly that
permission, and ipamd names it (``ec2:<Action>`` in its log; its /v1/pool ``unauthorized`` record when it
still runs). The removal runs go in parallel threads (each ipamd is its own process, mostly waiting on
its timers); each run has its own IAM user and CLUSTER_NAME, so the leaked-ENI sweeps of different runs
never touch each other's ENIs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests import REPO
from tests.cloud.ipamd.ipamd_harness import Ipamd, run_ipamd
from vpccni.cloud.aws.tags import TAG_CLUSTER_NAME, TAG_CREATED_AT, TAG_INSTANCE_ID, interface_description
from vpccni.localcloud import LocalCloud
from vpccni.localcloud.ec2.iam import Denial
from vpccni.testing.ipamd_process import IpamdExited
from vpccni.wire.client import IpamdUnreachable
from vpccni.wire.protocol import ErrorKind, NoIpReason

__all__ = ["run_ipamd"]  # the harness fixture, used through pytest

POLICY = json.loads((REPO / "iam" / "vpccni-node-policy.json").read_text())
FUTURE_TYPE = "m99.large"  # a copy of m5.large: 3 ENIs x 10 addresses, unknown to vpccni.config.limits
PRIMARY_SLOTS = 9
STEP_TIMEOUT_S = 30.0
LIFE_SETTINGS = {
    "WARM_IP_TARGET": "3",
    "MINIMUM_IP_TARGET": "3",
    "DISABLE_LEAKED_ENI_CLEANUP": "false",
    "VPCCNI_LEAKED_ENI_GC_INTERVAL": "0.5",
    "VPCCNI_LEAKED_ENI_GC_GRACE": "1",
}
STEPS = ("start", "grow", "new ENI", "shrink", "free ENI", "leaked GC")
# The step each action is first needed at, in this life.
NEEDED_AT = {
    "ec2:DescribeInstances": "start",
    "ec2:DescribeInstanceTypes": "start",
    "ec2:DescribeNetworkInterfaces": "start",
    "ec2:DescribeSubnets": "start",
    "ec2:AssignPrivateIpAddresses": "grow",
    "ec2:CreateNetworkInterface": "new ENI",
    "ec2:CreateTags": "new ENI",
    "ec2:AttachNetworkInterface": "new ENI",
    "ec2:ModifyNetworkInterfaceAttribute": "new ENI",
    "ec2:UnassignPrivateIpAddresses": "shrink",
    "ec2:DetachNetworkInterface": "free ENI",
    "ec2:DeleteNetworkInterface": "free ENI",
}


def granted(policy: dict[str, Any]) -> list[str]:
    return [
        a
        for st in policy["Statement"]
        for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    ]


def policy_without(action: str) -> dict[str, Any]:
    statements = []
    for st in POLICY["Statement"]:
        kept = [a for a in granted({"Statement": [st]}) if a != action]
        if kept:
            statements.append({**st, "Action": kept})
    return {**POLICY, "Statement": statements}


# --- a type launched after this release ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ipamd_cloud() -> Iterator[LocalCloud]:
    """The harness's cloud, overridden: IAM mode on, and FUTURE_TYPE known to its EC2."""
    from moto.ec2.models import instance_types as moto_types

    from vpccni.localcloud.ec2 import state as ec2_state

    info = copy.deepcopy(moto_types.INSTANCE_TYPES["m5.large"])
    info["InstanceType"] = FUTURE_TYPE
    moto_types.INSTANCE_TYPES[FUTURE_TYPE] = info  # what DescribeInstanceTypes answers from
    moto_types.InstanceTypeBackend.instance_types.append(moto_types.InstanceType(FUTURE_TYPE))
    ec2_state._instance_types()[FUTURE_TYPE] = info  # the local cloud's limits and RunInstances check
    try:
        with LocalCloud(profile="fast", seed=29) as cloud:
            cloud.iam.enable()
            yield cloud
    finally:
        ec2_state._instance_types().pop(FUTURE_TYPE, None)
        listed = moto_types.InstanceTypeBackend.instance_types
        listed[:] = [t for t in listed if t.name != FUTURE_TYPE]
        moto_types.INSTANCE_TYPES.pop(FUTURE_TYPE, None)


# --- one life ----------------------------------------------------------------------------------------------


class StepFailed(Exception):
    pass


@dataclass
class Life:
    name: str
    user_arn: str = ""
    passed: list[str] = field(default_factory=list)
    failed_at: str | None = None
    why: str = ""
    refused: list[str] = field(default_factory=list)  # ec2:<Action> EC2 refused, in order
    log: str = ""
    unauthorized: dict[str, str] = field(default_factory=dict)  # ipamd's own record, if it still ran


def wait_for(what: str, check: Callable[[], Any], fail_fast: Callable[[], str | None]) -> Any:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        refused = fail_fast()
        if refused:
            raise StepFailed(f"{what}: {refused}")
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise StepFailed(f"{what}: not within {STEP_TIMEOUT_S}s")


def ipamd_refused(ipamd: Ipamd) -> str | None:
    """What ipamd itself reports EC2 refused (its /v1/pool record), if anything."""
    try:
        unauthorized = ipamd.pool()["unauthorized"]
    except IpamdUnreachable:
        return None
    return "; ".join(f"{k}: {v}" for k, v in unauthorized.items()) or None


def add(ipamd: Ipamd, cid: str) -> str:
    def attempt() -> str | None:
        answer = ipamd.add(cid)
        if answer.ok and answer.allocation is not None:
            return str(answer.allocation.ipv4)
        error = answer.error
        assert error is not None and error.kind in (ErrorKind.NO_IP, ErrorKind.NOT_READY), answer
        if error.reason == NoIpReason.UNAUTHORIZED:
            raise StepFailed(f"ADD {cid}: {error.message}")
        assert error.reason in (NoIpReason.GROWING, NoIpReason.STARTING, NoIpReason.THROTTLED), error
        return None

    return str(wait_for(f"ADD {cid}", attempt, lambda: None))


def secondary_enis(ipamd: Ipamd) -> list[Any]:
    return [e for e in ipamd.ec2_enis() if e.eni_id != ipamd.node.primary_eni_id]


def live(ipamd: Ipamd, life: Life, cloud: LocalCloud) -> None:
    """Run the steps in order; record where it stopped."""
    node = ipamd.node
    state: dict[str, Any] = {}

    def refusals() -> list[Denial]:
        return [d for d in cloud.iam.denials() if d.user_arn == life.user_arn]

    def start() -> None:
        try:
            ipamd.start()
        except (IpamdExited, TimeoutError) as exc:
            said = [line for line in str(exc).splitlines() if "cannot start" in line]
            raise StepFailed((said or str(exc).splitlines())[-1]) from None

    def grow() -> None:
        state["pods"] = {f"pod{n}": add(ipamd, f"pod{n}") for n in range(1, PRIMARY_SLOTS + 1)}
        on_primary = set(ipamd.ec2_cidrs()[node.primary_eni_id])
        assert {f"{ip}/32" for ip in state["pods"].values()} <= on_primary  # EC2 backs every pod address

    def new_eni() -> None:
        def attached() -> Any:
            found = [e for e in secondary_enis(ipamd) if e.delete_on_termination and e.private_ips[1:]]
            return found[0] if found and len(ipamd.pool()["enis"]) == 2 else None

        eni = wait_for("a new ENI, attached with DeleteOnTermination", attached, lambda: ipamd_refused(ipamd))
        assert {(TAG_INSTANCE_ID, node.instance_id), (TAG_CLUSTER_NAME, life.name)} <= set(eni.tags)
        state["eni"] = eni.eni_id
        ip = add(ipamd, "pod10")
        assert f"{ip}/32" in ipamd.ec2_cidrs()[eni.eni_id]  # the 10th pod is served by the new ENI

    def shrink() -> None:
        settled = wait_for("the pool to settle", ipamd.pool_settled, lambda: ipamd_refused(ipamd))
        held = settled["totals"]["total"]
        assert ipamd.delete("pod10").ok  # its ENI now holds only spares: one more than the target wants
        wait_for(
            "a spare address handed back to EC2",
            lambda: sum(len(c) for c in ipamd.ec2_cidrs().values()) < held,
            lambda: ipamd_refused(ipamd),
        )

    def free_eni() -> None:
        for n in range(1, PRIMARY_SLOTS + 1):  # the primary's addresses now cover the target alone
            assert ipamd.delete(f"pod{n}").ok
        gone = lambda: all(e.eni_id != state["eni"] for e in cloud.server.eni_views())  # noqa: E731
        wait_for(f"{state['eni']} detached and deleted", gone, lambda: ipamd_refused(ipamd))

    def leaked_gc() -> None:
        admin = cloud.client()
        before = len(refusals())
        owned = [(TAG_INSTANCE_ID, node.instance_id), (TAG_CLUSTER_NAME, life.name)]
        old = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        leaked = []
        for tags in (owned + [(TAG_CREATED_AT, old)], owned):  # dated, and undated (the sweep dates it)
            spec = [{"ResourceType": "network-interface", "Tags": [{"Key": k, "Value": v} for k, v in tags]}]
            leaked.append(
                admin.create_network_interface(
                    SubnetId=node.subnet_id,
                    Description=interface_description(node.instance_id),
                    TagSpecifications=spec,
                )["NetworkInterface"]["NetworkInterfaceId"]
            )

        def swept() -> bool:
            deleted = {d["eni_id"] for d in ipamd.pool()["leaked_eni_gc"]["deleted"]}
            return set(leaked) <= deleted and not {e.eni_id for e in cloud.server.eni_views()} & set(leaked)

        wait_for(
            "both leaked ENIs deleted by this ipamd",
            swept,
            lambda: "; ".join(d.missing.action for d in refusals()[before:]) or None,
        )

    for name, step in zip(STEPS, (start, grow, new_eni, shrink, free_eni, leaked_gc), strict=True):
        try:
            step()
        except StepFailed as failed:
            life.failed_at, life.why = name, str(failed)
            break
        life.passed.append(name)
    life.refused = [f"ec2:{d.missing.action}" for d in refusals()]
    if ipamd.running:
        life.unauthorized = ipamd.pool()["unauthorized"]
        ipamd.stop()
    life.log = Path(ipamd.paths.log).read_text(errors="replace")


def run_life(make_ipamd: Callable[..., Ipamd], cloud: LocalCloud, name: str, policy: dict[str, Any]) -> Life:
    creds = cloud.iam.create_user(name, policy)
    life = Life(name, creds.user_arn)
    settings = {**LIFE_SETTINGS, **creds.env(), "CLUSTER_NAME": name}
    ipamd = make_ipamd(FUTURE_TYPE, settings, start=False)
    live(ipamd, life, cloud)
    return life


# --- the proofs --------------------------------------------------------------------------------------------


def test_every_action_of_the_policy_is_in_the_table() -> None:
    assert sorted(NEEDED_AT) == sorted(granted(POLICY))


def test_the_policy_is_sufficient_and_every_action_necessary(
    run_ipamd: Callable[..., Ipamd], ipamd_cloud: LocalCloud
) -> None:
    full = run_life(run_ipamd, ipamd_cloud, "ipamd-full", POLICY)
    assert full.failed_at is None, f"with the whole policy, {full.failed_at}: {full.why}\n{full.log[-3000:]}"
    assert full.passed == list(STEPS)
    assert full.refused == [] and full.unauthorized == {}

    def without(action: str) -> Life:
        return run_life(run_ipamd, ipamd_cloud, f"ipamd-no-{action.split(':')[1]}", policy_without(action))

    with ThreadPoolExecutor(max_workers=4) as pool:
        lives = dict(zip(NEEDED_AT, pool.map(without, NEEDED_AT), strict=True))

    for action, life in lives.items():  # the evidence, one line per action (pytest -s shows it)
        said = "; ".join(f"{k}: {v}" for k, v in life.unauthorized.items()) or life.why
        print(
            f"without {action:38} stops at {life.failed_at!s:9} refused {life.refused}; ipamd: {said[:160]}"
        )
    problems = []
    for action, life in lives.items():
        step = NEEDED_AT[action]
        if life.failed_at != step:
            problems.append(
                f"without {action}: expected to stop at {step!r}, stopped at {life.failed_at!r} "
                f"({life.why}); passed {life.passed}"
            )
        elif not life.refused or set(life.refused) != {action}:
            problems.append(f"without {action}: EC2 refused {life.refused}, expected only {action}")
        elif action not in life.log:
            problems.append(f"without {action}: ipamd's log never names {action}:\n{life.log[-2000:]}")
        elif life.unauthorized and not any(action in m for m in life.unauthorized.values()):
            problems.append(f"without {action}: ipamd's unauthorized record {life.unauthorized} misses it")
    assert not problems, "\n".join(problems)
    # Every step that needs an action was reached with everything before it working.
    for action, life in lives.items():
        assert life.passed == list(STEPS[: STEPS.index(NEEDED_AT[action])]), (action, life.passed)
