"""DEL never fails, and never leaks: the real plugin against a test double of ipamd that is up,
down, silent or failing; with and without netns and prevResult; and the fallback's netlink teardown,
checked in a node namespace built by hand (rules and routes before vs after, nothing else touched)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.libcni import Run, exec_plugin, k8s_args
from tests.net.plugin.test_plugin_harness import (
    FakeIpamd,
    failing_responder,
    in_netns,
    install_plugin,
    netns,
    sh,
    short_tmpdir,
)
from vpccni.wire.protocol import ErrorKind, Op, PodRef, decode_request, release_record_name, spool_dir_for

CID = "deadbeef02"


@dataclass
class Rig:
    node: str
    pod_netns: str
    plugin: Path
    socket: str
    fake: FakeIpamd

    def conf(self, **extra: Any) -> dict[str, Any]:
        return {
            "cniVersion": "1.0.0",
            "name": "pl7net",
            "type": "vpccni",
            "ipamdSocket": self.socket,
            **extra,
        }

    def delete(self, stdin: Mapping[str, Any], *, netns: str | None = None, cid: str = CID) -> Run:
        return exec_plugin(
            in_netns(self.node, str(self.plugin)),
            "DEL",
            stdin,
            container_id=cid,
            ifname="eth0",
            netns=self.pod_netns if netns is None else netns,
            args=k8s_args("ns1", "web-1", "uid-9", cid),
        )

    @property
    def record(self) -> Path:
        return Path(spool_dir_for(self.socket)) / release_record_name("pl7net", CID, "eth0")


@pytest.fixture(scope="module")
def spaces() -> Iterator[tuple[str, str]]:
    pid = os.getpid() % 100000
    with netns(f"pl7d{pid}"), netns(f"pl7q{pid}") as pod:
        yield f"pl7d{pid}", pod


@pytest.fixture(scope="module")
def plugin() -> Iterator[Path]:
    with short_tmpdir() as d:
        yield install_plugin(d / "bin")


@pytest.fixture
def rig(spaces: tuple[str, str], plugin: Path) -> Iterator[Rig]:
    with short_tmpdir() as d:
        fake = FakeIpamd(str(d / "run" / "ipamd.sock"))
        (d / "run").mkdir()
        fake.start()
        try:
            yield Rig(spaces[0], spaces[1], plugin, fake.socket_path, fake)
        finally:
            fake.stop()


def prev_result(rig: Rig, address: str = "10.0.1.10", host: str = "pl7h1") -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": host, "mac": "0a:58:0a:00:01:0a"},
            {"name": "eth0", "mac": "0a:58:0a:00:01:0b", "sandbox": rig.pod_netns},
        ],
        "ips": [{"address": f"{address}/32", "gateway": "169.254.1.1", "interface": 1}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
    }


def assert_success(run: Run) -> None:
    assert (run.returncode, run.stdout) == (0, ""), run.describe()


# --- with ipamd up ---------------------------------------------------------------------------------


def test_del_is_forwarded_and_leaves_no_record(rig: Rig) -> None:
    prev = prev_result(rig)
    assert_success(rig.delete(rig.conf(prevResult=prev)))
    [req] = rig.fake.requests
    assert (req.op, req.key, req.netns, req.prev_result) == (
        Op.DEL,
        ("pl7net", CID, "eth0"),
        rig.pod_netns,
        prev,
    )
    assert req.pod == PodRef("ns1", "web-1", "uid-9", CID)
    assert not rig.record.exists()


def test_del_without_netns_and_prev_result_succeeds(rig: Rig) -> None:
    assert_success(rig.delete(rig.conf(), netns=""))
    assert_success(rig.delete(rig.conf(prevResult={}), netns=""))
    assert [(r.netns, r.prev_result) for r in rig.fake.requests] == [("", None), ("", None)]


def test_repeated_del_succeeds(rig: Rig) -> None:
    for _ in range(3):
        assert_success(rig.delete(rig.conf(prevResult=prev_result(rig))))
    assert rig.fake.ops == ["DEL"] * 3


# --- with ipamd not serving ------------------------------------------------------------------------


def assert_record(rig: Rig, prev: dict[str, Any] | None) -> None:
    replayed = decode_request(rig.record.read_bytes())
    assert (replayed.op, replayed.key, replayed.reason) == (
        Op.DEL,
        ("pl7net", CID, "eth0"),
        "IpamdUnavailable",
    )
    assert replayed.pod == PodRef("ns1", "web-1", "uid-9", CID) and replayed.prev_result == prev
    assert os.listdir(rig.record.parent) == [rig.record.name]


def test_del_with_ipamd_down_spools_a_release_record(rig: Rig) -> None:
    rig.fake.stop()
    prev = prev_result(rig)
    run = rig.delete(rig.conf(prevResult=prev))
    assert_success(run)
    assert_record(rig, prev)
    assert "release record written" in run.stderr


def test_repeated_del_with_ipamd_down_keeps_one_record(rig: Rig) -> None:
    rig.fake.stop()
    for _ in range(2):
        assert_success(rig.delete(rig.conf(prevResult=prev_result(rig))))
    assert_record(rig, prev_result(rig))


def test_del_with_ipamd_down_and_nothing_to_go_on_still_spools(rig: Rig) -> None:
    rig.fake.stop()
    assert_success(rig.delete(rig.conf(), netns=""))
    assert_record(rig, None)


@pytest.mark.parametrize("mode", ["silent", "hangs up", "garbage", "fails"])
def test_del_when_ipamd_does_not_release_falls_back(rig: Rig, mode: str) -> None:
    if mode == "silent":
        rig.fake.responder = lambda request: None
    elif mode == "hangs up":
        rig.fake.close_without_answer = True
    elif mode == "garbage":
        rig.fake.raw_reply = b"\x00\x01\n"
    else:
        rig.fake.responder = failing_responder(ErrorKind.INTERNAL, "datastore exploded")
    prev = prev_result(rig)
    assert_success(rig.delete(rig.conf(prevResult=prev, ipamdTimeoutMs=300)))
    assert_record(rig, prev)


def test_del_fails_only_when_the_release_cannot_be_recorded(rig: Rig) -> None:
    rig.fake.stop()
    blocker = Path(rig.socket).parent / "blocked"
    blocker.write_text("a file where the socket's directory should be")
    conf = rig.conf(ipamdSocket=str(blocker / "ipamd.sock"), prevResult=prev_result(rig))
    run = rig.delete(conf)
    err = json.loads(run.stdout)
    assert run.returncode == 1 and err["code"] == 5 and "release record could not be written" in err["msg"]


# --- the fallback's teardown, in a node namespace --------------------------------------------------


def dump(node: str) -> tuple[set[str], set[str]]:
    rules = {line.strip() for line in sh("ip", "-n", node, "-4", "rule", "show").splitlines()}
    routes = {
        line.strip() for line in sh("ip", "-n", node, "-4", "route", "show", "table", "all").splitlines()
    }
    return rules, routes


@pytest.fixture
def plumbed(rig: Rig) -> Iterator[Rig]:
    """Two pods' host routing, by hand, as ipamd would leave it: pl7h1/10.0.1.10 and pl7h2/10.0.1.11."""
    node, pod = rig.node, os.path.basename(rig.pod_netns)
    made = []
    try:
        for host, peer, addr in (("pl7h1", "pl7c1", "10.0.1.10"), ("pl7h2", "pl7c2", "10.0.1.11")):
            sh("ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", pod)
            made.append(host)
            sh("ip", "-n", node, "link", "set", host, "up")
            sh("ip", "-n", pod, "link", "set", peer, "up")
            sh("ip", "-n", node, "route", "add", f"{addr}/32", "dev", host, "scope", "link")
            sh("ip", "-n", node, "rule", "add", "to", f"{addr}/32", "lookup", "main", "prio", "512")
            sh("ip", "-n", node, "rule", "add", "from", f"{addr}/32", "lookup", "2", "prio", "1536")
        # A default route: a route *lookup* for a pod address would find it (the guard must not).
        sh("ip", "-n", node, "route", "add", "default", "dev", "pl7h2")
        # A stale duplicate from-rule in another table (the ENI moved), and near-misses to keep.
        sh("ip", "-n", node, "rule", "add", "from", "10.0.1.10/32", "lookup", "3", "prio", "1536")
        sh("ip", "-n", node, "rule", "add", "from", "10.0.1.10/32", "lookup", "4", "prio", "1537")
        sh("ip", "-n", node, "rule", "add", "to", "10.0.1.100/32", "lookup", "main", "prio", "512")
        sh("ip", "-n", node, "rule", "add", "from", "10.0.1.0/24", "lookup", "2", "prio", "1536")
        yield rig
    finally:
        for host in made:
            sh("ip", "-n", node, "link", "del", host)
        for prio in ("512", "1536", "1537"):
            while os.system(f"ip -n {node} rule del prio {prio} 2>/dev/null") == 0:
                pass


def test_fallback_removes_exactly_the_pods_rules_and_route(plumbed: Rig) -> None:
    rig = plumbed
    rig.fake.stop()
    rules_before, routes_before = dump(rig.node)
    run = rig.delete(rig.conf(prevResult=prev_result(rig)))
    assert_success(run)
    rules_after, routes_after = dump(rig.node)
    assert rules_before - rules_after == {
        "512:\tfrom all to 10.0.1.10 lookup main",
        "1536:\tfrom 10.0.1.10 lookup 2",
        "1536:\tfrom 10.0.1.10 lookup 3",
    }
    assert routes_before - routes_after == {"10.0.1.10 dev pl7h1 scope link"}
    assert rules_after <= rules_before and routes_after <= routes_before
    assert "pl7h1" in sh("ip", "-n", rig.node, "link", "show")  # the veth goes with the netns, not here
    assert_record(rig, prev_result(rig))
    # Again: everything is already gone, and that is fine.
    assert_success(rig.delete(rig.conf(prevResult=prev_result(rig))))
    assert dump(rig.node) == (rules_after, routes_after)


def test_fallback_keeps_an_address_that_another_pod_holds_now(plumbed: Rig) -> None:
    """A late DEL whose prevResult names 10.0.1.11 on pl7h1, while 10.0.1.11 routes to pl7h2."""
    rig = plumbed
    rig.fake.stop()
    before = dump(rig.node)
    run = rig.delete(rig.conf(prevResult=prev_result(rig, address="10.0.1.11", host="pl7h1")))
    assert_success(run)
    assert dump(rig.node) == before
    assert "kept 10.0.1.11: its /32 route leads to another interface than pl7h1" in run.stderr


def test_fallback_without_host_route_still_removes_the_rules(plumbed: Rig) -> None:
    """The veth (and with it the /32 route) already went with the netns; the rules did not."""
    rig = plumbed
    rig.fake.stop()
    sh("ip", "-n", rig.node, "route", "del", "10.0.1.10/32")
    rules_before, _ = dump(rig.node)
    assert_success(rig.delete(rig.conf(prevResult=prev_result(rig))))
    assert rules_before - dump(rig.node)[0] == {
        "512:\tfrom all to 10.0.1.10 lookup main",
        "1536:\tfrom 10.0.1.10 lookup 2",
        "1536:\tfrom 10.0.1.10 lookup 3",
    }
