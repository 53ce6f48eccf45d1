"""The node policy (iam/vpccni-node-policy.json) grants exactly the EC2 actions the code calls.

The calls are found statically: every boto3 EC2 client method vpccni/cloud/aws*.py touches — called,
or passed along as a bound method (``self._pages(..., self._ec2.describe_subnets, ...)``), or named to
``get_paginator``/``getattr`` — mapped to its API action through botocore's own EC2 service model. So a
new call without a policy line fails here, and so does a policy line for an action nobody calls.
That the list is also *sufficient and necessary at run time* is proven in tests/cloud/ipamd/test_iam_ipamd.py.
"""

from __future__ import annotations

import ast
import functools
import json
from typing import Any

from tests import REPO

POLICY = REPO / "iam" / "vpccni-node-policy.json"
README = REPO / "iam" / "README.md"
CLOUD = REPO / "vpccni" / "cloud" / "aws"
ENI_ARN = "arn:aws:ec2:*:*:network-interface/*"
_NAMING_CALLS = frozenset({"get_paginator", "getattr", "can_paginate", "get_waiter"})


@functools.cache
def ec2_methods() -> dict[str, str]:
    """boto3 EC2 client method name -> API action, from botocore's service model (no client, no I/O)."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.Session().get_service_model("ec2")
    return {xform_name(name): name for name in model.operation_names}


def ec2_methods_used(source: str) -> set[str]:
    """EC2 client methods ``source`` touches: ``<x>.<method>`` on anything but a bare ``self`` (the
    provider's own methods share some names, e.g. ``create_tags``), and string method names given to
    ``get_paginator``/``getattr``."""
    methods = ec2_methods()
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in methods:
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.add(node.attr)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _NAMING_CALLS:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value in methods:
                        found.add(arg.value)
    return found


def called_actions() -> dict[str, list[str]]:
    """``ec2:<Action>`` -> the files under vpccni/cloud/aws that call it."""
    out: dict[str, list[str]] = {}
    for path in sorted(CLOUD.glob("*.py")):
        for method in ec2_methods_used(path.read_text()):
            out.setdefault(f"ec2:{ec2_methods()[method]}", []).append(path.name)
    return out


def policy() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(POLICY.read_text())
    return loaded


def statements() -> list[dict[str, Any]]:
    return list(policy()["Statement"])


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def granted_actions() -> set[str]:
    return {action for st in statements() for action in as_list(st["Action"])}


# --- the scanner itself ------------------------------------------------------------------------------


def test_scanner_sees_calls_bound_methods_and_named_methods_but_not_the_providers_own() -> None:
    source = """
class P:
    def create_tags(self, ids): ...
    def run(self):
        self._ec2.assign_private_ip_addresses(NetworkInterfaceId="eni-1")
        self._pages("DescribeSubnets", self._ec2.describe_subnets, "Subnets")
        client.get_paginator("describe_vpcs")
        getattr(self._ec2, "delete_network_interface")
        self.create_tags(["eni-1"])
        self.describe_interfaces(["eni-1"])
"""
    assert ec2_methods_used(source) == {
        "assign_private_ip_addresses",
        "describe_subnets",
        "describe_vpcs",
        "delete_network_interface",
    }


def test_the_provider_calls_the_ec2_actions_ipamd_needs() -> None:
    # Guards the scan: if it found nothing (a rename of the client attribute, a moved file), the
    # equality below would be trivially about an empty set.
    assert {"ec2:AttachNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:CreateTags"} <= set(
        called_actions()
    )


# --- the policy against the code ---------------------------------------------------------------------


def test_every_ec2_action_the_code_calls_is_granted() -> None:
    missing = {a: files for a, files in called_actions().items() if a not in granted_actions()}
    assert not missing, f"called in vpccni/cloud but not granted by {POLICY.name}: {missing}"


def test_every_granted_action_is_called_by_the_code() -> None:
    unused = granted_actions() - set(called_actions())
    assert not unused, f"granted by {POLICY.name} but never called in vpccni/cloud/aws*.py: {sorted(unused)}"


def test_policy_is_a_plain_allow_list_of_real_ec2_actions() -> None:
    doc = policy()
    assert doc["Version"] == "2012-10-17"
    known = {f"ec2:{action}" for action in ec2_methods().values()}
    for st in statements():
        assert st["Effect"] == "Allow", st
        assert set(st) <= {"Sid", "Effect", "Action", "Resource"}, f"unexpected keys in {st}"
        for action in as_list(st["Action"]):
            assert "*" not in action, f"wildcard action {action!r}: list actions one by one"
            assert action in known, f"{action!r} is not an EC2 API action"
    all_listed = [a for st in statements() for a in as_list(st["Action"])]
    assert len(all_listed) == len(set(all_listed)), "an action is granted twice"


def test_create_tags_is_granted_only_on_network_interfaces() -> None:
    holders = [st for st in statements() if "ec2:CreateTags" in as_list(st["Action"])]
    assert len(holders) == 1
    assert as_list(holders[0]["Resource"]) == [ENI_ARN]
    assert as_list(holders[0]["Action"]) == ["ec2:CreateTags"]


def test_readme_explains_every_granted_action() -> None:
    text = README.read_text()
    unexplained = sorted(a for a in granted_actions() if f"`{a}`" not in text)
    assert not unexplained, f"iam/README.md does not explain {unexplained}"


def test_the_programs_reach_ec2_only_through_vpccni_cloud() -> None:
    # The scan above covers vpccni/cloud; it is the whole story only if ipamd and the plugin never
    # talk to EC2 themselves.
    offenders = []
    for package in ("ipamd", "plugin"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in ("boto3", "botocore") for n in names):
                    offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"these import boto3/botocore directly instead of vpccni.cloud: {offenders}"
