"""Mapping ipamd's error kinds and local failures to CNI codes (plugin.cni), and the error JSON."""

from __future__ import annotations

import io
import json

import pytest

from plugin import cni
from plugin.log import PluginLog
from plugin.main import run
from vpccni.errors import ProtocolError
from vpccni.wire.client import IpamdTimeout, IpamdUnreachable
from vpccni.wire.protocol import ErrorInfo, ErrorKind, NoIpReason

EXPECTED_KIND_CODES = {
    ErrorKind.BAD_REQUEST: 103,
    ErrorKind.UNSUPPORTED_VERSION: 104,
    ErrorKind.NOT_READY: 11,
    ErrorKind.TRY_AGAIN: 11,
    ErrorKind.INVALID_NETNS: 4,
    ErrorKind.IFNAME_EXISTS: 4,
    ErrorKind.CHECK_FAILED: 102,
    ErrorKind.PLUMBING: 101,
    ErrorKind.INTERNAL: 999,
}
TRANSIENT_REASONS = {
    NoIpReason.STARTING,
    NoIpReason.GROWING,
    NoIpReason.THROTTLED,
    NoIpReason.CLOUD_ERROR,
    NoIpReason.CLOUD_SLOW,
    NoIpReason.COOLING,
}


def test_every_error_kind_has_a_deliberate_code() -> None:
    assert set(EXPECTED_KIND_CODES) | {ErrorKind.NO_IP} == set(ErrorKind)
    for kind, code in EXPECTED_KIND_CODES.items():
        err = cni.error_from_ipamd("ADD", ErrorInfo(kind, "the message"))
        assert err.code == code, kind
        assert "the message" in err.msg and f"kind={kind.value}" in err.details


def test_invalid_netns_names_the_variable() -> None:
    assert "CNI_NETNS" in cni.error_from_ipamd("ADD", ErrorInfo(ErrorKind.INVALID_NETNS, "not a netns")).msg


def test_an_interface_name_the_pod_already_has_names_the_variable() -> None:
    err = cni.error_from_ipamd("ADD", ErrorInfo(ErrorKind.IFNAME_EXISTS, "eth0 already exists in ..."))
    assert err.code == 4 and err.msg == "invalid CNI_IFNAME: eth0 already exists in ..."


@pytest.mark.parametrize("reason", list(NoIpReason))
def test_no_ip_carries_the_reason_and_retries_only_when_it_passes(reason: NoIpReason) -> None:
    err = cni.error_from_ipamd("ADD", ErrorInfo(ErrorKind.NO_IP, "eni-1 full", reason))
    assert err.code == (11 if reason in TRANSIENT_REASONS else 100)
    assert err.msg.startswith("no free IP address: ") and "(ipamd: eni-1 full)" in err.msg
    assert "the pool is empty" not in err.msg, f"{reason} has no sentence of its own"
    assert f"reason={reason.value}" in err.details


def test_subnet_full_says_so_in_ec2_words() -> None:
    err = cni.error_from_ipamd("ADD", ErrorInfo(ErrorKind.NO_IP, "", NoIpReason.SUBNET_FULL))
    assert err.msg.startswith("no free IP address: the subnet is full (InsufficientFreeAddressesInSubnet)")


def test_no_ip_without_a_reason_is_transient() -> None:
    err = cni.error_from_ipamd("ADD", ErrorInfo(ErrorKind.NO_IP, ""))
    assert (err.code, err.msg) == (11, "no free IP address: the pool is empty")


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_status_failures_are_all_50(kind: ErrorKind) -> None:
    reason = NoIpReason.ENI_LIMIT if kind is ErrorKind.NO_IP else None
    err = cni.error_from_ipamd("STATUS", ErrorInfo(kind, "why", reason))
    assert err.code == 50 and "why" in err.msg


@pytest.mark.parametrize(
    ("exc", "code", "status_code"),
    [
        (IpamdUnreachable("ipamd is not reachable at /x: refused"), 11, 50),
        (IpamdTimeout("ipamd at /x did not answer within 1 s"), 11, 50),
        (ProtocolError("garbage"), 104, 50),
        (RuntimeError("bug"), 999, 999),
    ],
)
def test_local_failures(exc: Exception, code: int, status_code: int) -> None:
    assert cni.error_from_failure("ADD", exc, "/x").code == code
    assert cni.error_from_failure("STATUS", exc, "/x").code == status_code
    assert str(exc) in cni.error_from_failure("ADD", exc, "/x").msg


def test_unreachable_says_what_to_check() -> None:
    err = cni.error_from_failure("ADD", IpamdUnreachable("ipamd is not reachable at /x: refused"), "/x")
    assert "ipamdSocket" in err.msg and "DaemonSet" in err.msg


def test_error_json_shape() -> None:
    assert json.loads(cni.CniError(7, "bad", "d").to_json("0.4.0")) == {
        "cniVersion": "0.4.0",
        "code": 7,
        "msg": "bad",
        "details": "d",
    }
    assert "details" not in json.loads(cni.CniError(7, "bad").to_json("1.0.0"))


# --- the executable's error path, in-process (no socket is reached) --------------------------------


def run_plugin(env: dict[str, str], stdin: bytes) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = run(env, lambda: stdin, out, PluginLog(err))
    return rc, out.getvalue(), err.getvalue()


ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}


def test_errors_are_one_json_document_on_stdout_and_a_log_line_on_stderr() -> None:
    rc, out, err = run_plugin(ENV, b'{"cniVersion": "0.4.0", "name": "bad name"}')
    assert rc == 1
    assert json.loads(out) == {
        "cniVersion": "0.4.0",
        "code": 7,
        "msg": "invalid network name 'bad name': it must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$",
    }
    assert "ERROR" in err and "code 7" in err


def test_an_unparseable_config_reports_in_the_latest_version() -> None:
    rc, out, _ = run_plugin(ENV, b"{")
    assert rc == 1 and json.loads(out)["cniVersion"] == "1.1.0" and json.loads(out)["code"] == 6


def test_a_verb_too_new_for_the_config_is_code_1() -> None:
    rc, out, _ = run_plugin({**ENV, "CNI_COMMAND": "STATUS"}, b'{"cniVersion": "1.0.0", "name": "n"}')
    assert rc == 1 and json.loads(out) == {
        "cniVersion": "1.0.0",
        "code": 1,
        "msg": "config version does not allow STATUS: cniVersion is 1.0.0, STATUS needs 1.1.0 or later; "
        "raise the conflist's cniVersion (or list 1.1.0+ in 'cniVersions')",
    }


def test_version_needs_nothing_else() -> None:
    rc, out, err = run_plugin({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.3.1"}')
    assert rc == 0 and json.loads(out)["cniVersion"] == "0.3.1" and err == ""
