"""The real plugin executable (the installed launcher), exec'd like a runtime does, against a test
double of ipamd: every verb, every spec version's result, every error path and its code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import REPO
from tests.libcni import Run, exec_plugin, k8s_args
from tests.net.plugin.test_plugin_harness import (
    CONTAINER_MAC,
    HOST_MAC,
    FakeIpamd,
    failing_responder,
    in_netns,
    install_plugin,
    netns,
    short_tmpdir,
)
from vpccni.wire.cnicodes import TRY_AGAIN_LATER
from vpccni.wire.protocol import PROTOCOL_VERSION, CniAttachment, ErrorKind, NoIpReason, Op, PodRef

VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CID = "c0ffee01"


@dataclass
class Rig:
    node: str
    pod_netns: str
    plugin: Path
    socket: str
    fake: FakeIpamd

    def conf(self, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": "pl7net",
            "type": "vpccni",
            "ipamdSocket": self.socket,
            **extra,
        }

    def run(
        self,
        command: str,
        stdin: bytes | Mapping[str, Any],
        *,
        cid: str = CID,
        ifname: str = "eth0",
        netns: str | None = None,
        args: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Run:
        return exec_plugin(
            in_netns(self.node, str(self.plugin)),
            command,
            stdin,
            container_id=cid,
            ifname=ifname,
            netns=self.pod_netns if netns is None else netns,
            args=k8s_args("ns1", "web-0", "uid-1", cid) if args is None else args,
            cni_path=str(self.plugin.parent),
            env=env,
        )


@pytest.fixture(scope="module")
def spaces() -> Iterator[tuple[str, str]]:
    pid = os.getpid() % 100000
    with netns(f"pl7n{pid}"), netns(f"pl7p{pid}") as pod:
        yield f"pl7n{pid}", pod


@pytest.fixture(scope="module")
def plugin() -> Iterator[Path]:
    with short_tmpdir() as d:
        yield install_plugin(d / "bin")


@pytest.fixture
def rig(spaces: tuple[str, str], plugin: Path) -> Iterator[Rig]:
    with short_tmpdir() as d:
        fake = FakeIpamd(str(d / "ipamd.sock")).start()
        try:
            yield Rig(spaces[0], spaces[1], plugin, fake.socket_path, fake)
        finally:
            fake.stop()


def only_json(run: Run) -> Any:
    """stdout holds exactly one JSON document (logs must never leak there)."""
    return json.loads(run.stdout)


# --- ADD -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_add_prints_the_result_for_the_requested_version(rig: Rig, version: str) -> None:
    run = rig.run("ADD", rig.conf(version))
    assert run.returncode == 0, run.describe()
    result = only_json(run)
    mtu = {"mtu": 9001} if version == "1.1.0" else {}
    assert result["cniVersion"] == version
    assert result["interfaces"] == [
        {"name": "eni0123456789a", "mac": HOST_MAC, **mtu},
        {"name": "eth0", "mac": CONTAINER_MAC, "sandbox": rig.pod_netns, **mtu},
    ]
    ip = {"address": "10.0.1.10/32", "gateway": "169.254.1.1", "interface": 1}
    assert result["ips"] == [{**ip, "version": "4"} if version < "1.0.0" else ip]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}]


def test_add_sends_one_complete_request(rig: Rig) -> None:
    assert rig.run("ADD", rig.conf()).returncode == 0
    [req] = rig.fake.requests
    assert (req.op, req.key, req.netns, req.v) == (
        Op.ADD,
        ("pl7net", CID, "eth0"),
        rig.pod_netns,
        PROTOCOL_VERSION,
    )
    assert req.pod == PodRef(namespace="ns1", name="web-0", uid="uid-1", infra_container_id=CID)
    assert req.deadline_ms == 9000 and req.prev_result is None


def test_add_timeout_and_deadline_follow_the_conflist(rig: Rig) -> None:
    assert rig.run("ADD", rig.conf(ipamdTimeoutMs=2000)).returncode == 0
    assert rig.fake.requests[0].deadline_ms == 1800


def test_add_chained_after_another_plugin_keeps_its_result(rig: Rig) -> None:
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "dummy0", "mac": "00:00:00:00:00:01"}],
        "ips": [{"address": "192.168.5.5/24", "interface": 0}],
    }
    run = rig.run("ADD", rig.conf(prevResult=prev))
    assert run.returncode == 0, run.describe()
    result = only_json(run)
    assert [i["name"] for i in result["interfaces"]] == ["dummy0", "eni0123456789a", "eth0"]
    assert [ip["interface"] for ip in result["ips"]] == [0, 2]
    assert rig.fake.requests[0].prev_result == prev


@pytest.mark.parametrize(
    ("kind", "reason", "code", "says"),
    [
        (
            ErrorKind.NO_IP,
            NoIpReason.SUBNET_FULL,
            100,
            "no free IP address: the subnet is full (InsufficientFreeAddressesInSubnet)",
        ),
        (ErrorKind.NO_IP, NoIpReason.GROWING, 11, "no free IP address: the pool is being topped up"),
        (ErrorKind.NOT_READY, None, 11, "ipamd cannot serve this yet"),
        (ErrorKind.PLUMBING, None, 101, "the ipamd message"),
        (ErrorKind.INVALID_NETNS, None, 4, "invalid CNI_NETNS"),
        (ErrorKind.IFNAME_EXISTS, None, 4, "invalid CNI_IFNAME"),
        (ErrorKind.BAD_REQUEST, None, 103, "the ipamd message"),
    ],
)
def test_add_failures_from_ipamd_get_their_code(
    rig: Rig, kind: ErrorKind, reason: NoIpReason | None, code: int, says: str
) -> None:
    rig.fake.responder = failing_responder(kind, "the ipamd message", reason)
    run = rig.run("ADD", rig.conf("0.4.0"))
    err = run.error
    assert (err["code"], err["cniVersion"]) == (code, "0.4.0") and says in err["msg"], run.describe()
    assert "the ipamd message" in err["msg"]


def test_add_with_ipamd_down_is_try_again_later(rig: Rig) -> None:
    rig.fake.stop()
    err = rig.run("ADD", rig.conf()).error
    assert err["code"] == TRY_AGAIN_LATER and rig.socket in err["msg"] and "ipamdSocket" in err["msg"]


def test_add_with_ipamd_silent_times_out_as_try_again_later(rig: Rig) -> None:
    rig.fake.responder = lambda request: None
    err = rig.run("ADD", rig.conf(ipamdTimeoutMs=300)).error
    assert err["code"] == TRY_AGAIN_LATER and "did not answer within 0.3 s" in err["msg"]


def test_add_with_ipamd_hanging_up_is_try_again_later(rig: Rig) -> None:
    rig.fake.close_without_answer = True
    err = rig.run("ADD", rig.conf()).error
    assert err["code"] == TRY_AGAIN_LATER and "closed the connection without answering" in err["msg"]


@pytest.mark.parametrize(
    "reply",
    [
        b"not json\n",
        b'{"v": 99, "ok": true}\n',
        b'{"v": 1, "ok": true}\n',
        b'{"v": 1, "ok": true, "allocation": {"ipv4": "10.0.1.10"}}\n',
    ],
)
def test_add_with_an_unreadable_answer_is_104(rig: Rig, reply: bytes) -> None:
    rig.fake.raw_reply = reply
    run = rig.run("ADD", rig.conf())
    assert run.error["code"] == 104, run.describe()


def test_add_allocation_without_mac_is_refused_not_printed(rig: Rig) -> None:
    bad = (
        f'{{"v":{PROTOCOL_VERSION},"ok":true,"allocation":{{"ipv4":"10.0.1.10","prefix_len":32,'
        '"gateway":"169.254.1.1","eni_id":"e","device_number":0,"route_table":254,"host_ifname":"eni1"}}\n'
    )
    rig.fake.raw_reply = bad.encode()
    err = rig.run("ADD", rig.conf()).error
    assert err["code"] == 104 and "host_mac" in err["msg"]


# --- bad input: the right code, and ipamd is never bothered ----------------------------------------


@pytest.mark.parametrize(
    ("case", "code", "named"),
    [
        ("malformed stdin", 6, "cannot decode"),
        ("empty stdin", 6, "stdin is empty"),
        ("missing container id", 4, "CNI_CONTAINERID"),
        ("missing netns", 4, "CNI_NETNS"),
        ("bad container id", 4, "CNI_CONTAINERID"),
        ("bad ifname", 4, "CNI_IFNAME"),
        ("long ifname", 4, "CNI_IFNAME"),
        ("unknown version", 1, "incompatible CNI versions"),
        ("no version", 1, "no cniVersion"),
        ("unknown CNI_ARGS", 4, "CNI_ARGS"),
        ("bad socket key", 7, "ipamdSocket"),
        ("unknown command", 4, "CNI_COMMAND"),
    ],
)
def test_bad_input_gets_the_right_code_before_any_request(rig: Rig, case: str, code: int, named: str) -> None:
    command, stdin, kw = "ADD", json.dumps(rig.conf()).encode(), {}
    if case == "malformed stdin":
        stdin = b'{"cniVersion": "1.0.0", "name": '
    elif case == "empty stdin":
        stdin = b""
    elif case == "missing container id":
        kw = {"cid": ""}
    elif case == "missing netns":
        kw = {"netns": ""}
    elif case == "bad container id":
        kw = {"cid": "../etc"}
    elif case == "bad ifname":
        kw = {"ifname": "eth/0"}
    elif case == "long ifname":
        kw = {"ifname": "a" * 16}
    elif case == "unknown version":
        stdin = json.dumps(rig.conf("0.2.0")).encode()
    elif case == "no version":
        stdin = json.dumps({"name": "pl7net", "type": "vpccni"}).encode()
    elif case == "unknown CNI_ARGS":
        kw = {"args": "K8S_POD_NAME=a;COLOR=blue"}
    elif case == "bad socket key":
        stdin = json.dumps(rig.conf(ipamdSocket="ipamd.sock")).encode()
    elif case == "unknown command":
        command = "REMOVE"
    run = rig.run(command, stdin, **kw)  # type: ignore[arg-type]
    assert run.returncode == 1
    err = only_json(run)
    assert err["code"] == code and named in err["msg"], run.describe()
    assert f"code {code}" in run.stderr  # and a log line on stderr, not stdout
    assert rig.fake.requests == []


def test_verbs_the_config_version_does_not_allow_are_code_1(rig: Rig) -> None:
    prev: dict[str, list[object]] = {"interfaces": [], "ips": []}
    for command, version in (("CHECK", "0.3.1"), ("GC", "1.0.0"), ("STATUS", "0.4.0")):
        err = rig.run(command, rig.conf(version, prevResult=prev)).error
        assert err["code"] == 1 and err["msg"].startswith(f"config version does not allow {command}")
    assert rig.fake.requests == []


# --- CHECK -----------------------------------------------------------------------------------------


def add_result(rig: Rig, version: str = "1.0.0") -> dict[str, Any]:
    run = rig.run("ADD", rig.conf(version))
    assert run.returncode == 0, run.describe()
    return dict(only_json(run))


def test_check_forwards_prev_result(rig: Rig) -> None:
    prev = add_result(rig)
    run = rig.run("CHECK", rig.conf(prevResult=prev))
    assert (run.returncode, run.stdout) == (0, ""), run.describe()
    assert rig.fake.ops == ["ADD", "CHECK"] and rig.fake.requests[1].prev_result == prev


def test_check_failure_names_what_is_missing(rig: Rig) -> None:
    prev = add_result(rig)
    rig.fake.responder = failing_responder(
        ErrorKind.CHECK_FAILED, "default route via 169.254.1.1 missing in eth0's netns"
    )
    err = rig.run("CHECK", rig.conf(prevResult=prev)).error
    assert err["code"] == 102 and "default route via 169.254.1.1 missing" in err["msg"]


def test_check_without_prev_result_says_so(rig: Rig) -> None:
    err = rig.run("CHECK", rig.conf()).error
    assert err["code"] == 7 and "prevResult" in err["msg"] and rig.fake.requests == []


# --- GC / STATUS / VERSION -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "keys", [("cni.dev/valid-attachments", "cni.dev/attachments"), ("cni.dev/attachments",)]
)
def test_gc_sends_the_valid_attachments(rig: Rig, keys: tuple[str, ...]) -> None:
    valid = [{"containerID": "keep1", "ifname": "eth0"}, {"containerID": "keep2", "ifname": "eth0"}]
    run = rig.run("GC", rig.conf("1.1.0", **dict.fromkeys(keys, valid)), cid="", ifname="", netns="", args="")
    assert run.returncode == 0, run.describe()
    [req] = rig.fake.requests
    assert req.op is Op.GC and req.network == "pl7net"
    assert req.valid_attachments == (CniAttachment("keep1", "eth0"), CniAttachment("keep2", "eth0"))
    assert "ipamd released 2" in run.stderr


def test_gc_with_ipamd_down_fails_to_be_retried(rig: Rig) -> None:
    rig.fake.stop()
    conf = rig.conf("1.1.0", **{"cni.dev/valid-attachments": []})
    assert rig.run("GC", conf, cid="", ifname="", netns="", args="").error["code"] == TRY_AGAIN_LATER


def test_status_ok_when_ipamd_can_serve(rig: Rig) -> None:
    run = rig.run("STATUS", rig.conf("1.1.0"), cid="", ifname="", netns="", args="")
    assert (run.returncode, run.stdout) == (0, "") and rig.fake.ops == ["STATUS"]


def test_status_50_when_ipamd_is_down(rig: Rig) -> None:
    rig.fake.stop()
    err = rig.run("STATUS", rig.conf("1.1.0"), cid="", ifname="", netns="", args="").error
    assert err["code"] == 50 and "not reachable" in err["msg"]


@pytest.mark.parametrize(
    ("kind", "reason", "says"),
    [(ErrorKind.NO_IP, NoIpReason.ENI_LIMIT, "every ENI is full"), (ErrorKind.NOT_READY, None, "recovering")],
)
def test_status_50_with_the_reason_when_ipamd_cannot_serve_add(
    rig: Rig, kind: ErrorKind, reason: NoIpReason | None, says: str
) -> None:
    rig.fake.responder = failing_responder(kind, "recovering", reason)
    err = rig.run("STATUS", rig.conf("1.1.0"), cid="", ifname="", netns="", args="").error
    assert err["code"] == 50 and says in err["msg"]


def test_version_lists_every_supported_version(rig: Rig) -> None:
    run = rig.run("VERSION", {"cniVersion": "0.4.0"}, cid="", ifname="", netns="", args="")
    assert only_json(run) == {"cniVersion": "0.4.0", "supportedVersions": list(VERSIONS)}


@pytest.mark.parametrize(
    "entry", [[sys.executable, "-m", "plugin"], [str(Path(sys.executable).parent / "vpccni-cni")]]
)
def test_module_and_console_script_entry_points_work(rig: Rig, entry: list[str]) -> None:
    run = exec_plugin(
        in_netns(rig.node, *entry),
        "ADD",
        rig.conf(),
        container_id=CID,
        netns=rig.pod_netns,
        ifname="eth0",
        env={"PYTHONPATH": str(REPO)},
    )
    assert run.returncode == 0 and only_json(run)["ips"][0]["address"] == "10.0.1.10/32", run.describe()


def test_plugin_refuses_to_start_without_command_but_says_what_it_is(plugin: Path) -> None:
    proc = subprocess.run([str(plugin)], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and json.loads(proc.stdout)["code"] == 4
    assert "CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0" in proc.stderr
