"""protocol.Constants behaves like the StrEnum it replaced (without importing enum in the plugin)."""

from __future__ import annotations

import copy
import json

import pytest

from vpccni.wire.protocol import ErrorKind, NoIpReason, Op


def test_members_are_instances_with_their_value() -> None:
    assert isinstance(ErrorKind.NO_IP, ErrorKind) and isinstance(ErrorKind.NO_IP, str)
    assert ErrorKind.NO_IP == "no_ip" and ErrorKind.NO_IP.value == "no_ip" and str(ErrorKind.NO_IP) == "no_ip"
    assert Op.ADD == "ADD" and f"{NoIpReason.SUBNET_FULL}" == "subnet_full"


def test_lookup_by_value_returns_the_member_and_refuses_others() -> None:
    assert ErrorKind("no_ip") is ErrorKind.NO_IP
    assert Op("DEL") is Op.DEL
    for bad in ("NO_IP", "add", "", None, 3):
        with pytest.raises(ValueError, match="is not a valid"):
            ErrorKind(bad)  # type: ignore[arg-type]


def test_iteration_lists_every_member_in_declaration_order() -> None:
    assert [o.value for o in Op] == ["ADD", "DEL", "CHECK", "GC", "STATUS", "PING"]
    assert list(NoIpReason)[0] is NoIpReason.STARTING and len(list(NoIpReason)) == 14
    assert len({*ErrorKind}) == len(list(ErrorKind))


def test_hash_equality_copy_and_json_follow_the_value() -> None:
    by_kind: dict[str, int] = {ErrorKind.NO_IP: 1}
    assert by_kind["no_ip"] == 1
    assert copy.deepcopy(NoIpReason.ENI_LIMIT) is NoIpReason.ENI_LIMIT
    assert json.dumps([Op.GC, ErrorKind.INTERNAL]) == '["GC", "internal"]'
