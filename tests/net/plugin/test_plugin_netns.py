"""The real plugin and CNI_NETNS: it opens the namespace and passes it on (ipamd never opens the
runtime's path), refuses what cannot be one with code 4 before bothering ipamd, goes on without it for a DEL
whose namespace is gone, and fails a DEL whose namespace ipamd refuses (no fallback teardown on its say-so).
Then version skew, new plugin against an ipamd of protocol 1, which reads with recv(2) and never asks for the
descriptor: a clear 104 for ADD and CHECK, DEL's fallback, STATUS 50, never a hang, and nothing left open by
the kernel.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.libcni import Run, exec_plugin, k8s_args
from tests.net.plugin.test_plugin_harness import FakeIpamd, in_netns, install_plugin, netns, short_tmpdir
from vpccni.wire.cnicodes import INVALID_ENV, IPAMD_INCOMPATIBLE, STATUS_UNAVAILABLE
from vpccni.wire.protocol import ErrorKind, Request, Response, release_record_name, spool_dir_for

CID = "c0ffee0a"


@dataclass
class Rig:
    node: str
    pod_netns: str
    plugin: Path
    fake: FakeIpamd
    workdir: Path

    def run(self, command: str, *, netns: str | None = None, **extra: Any) -> Run:
        conf: Mapping[str, Any] = {"cniVersion": "1.1.0", "name": "pl7net", "type": "vpccni",
                                   "ipamdSocket": self.fake.socket_path, **extra}
        cni = command not in ("STATUS",)
        return exec_plugin(
            in_netns(self.node, str(self.plugin)),
            command,
            conf,
            container_id=CID if cni else "",
            ifname="eth0" if cni else "",
            netns=(self.pod_netns if netns is None else netns) if cni else "",
            args=k8s_args("ns1", "web-0", "uid-1", CID) if cni else "",
            timeout=20,
        )

    @property
    def record(self) -> Path:
        return Path(spool_dir_for(self.fake.socket_path)) / release_record_name("pl7net", CID, "eth0")


@pytest.fixture(scope="module")
def spaces() -> Iterator[tuple[str, str]]:
    pid = os.getpid() % 100000
    with netns(f"pl7v{pid}"), netns(f"pl7w{pid}") as pod:
        yield f"pl7v{pid}", pod


@pytest.fixture(scope="module")
def plugin() -> Iterator[Path]:
    with short_tmpdir() as d:
        yield install_plugin(d / "bin")


@pytest.fixture
def rig(spaces: tuple[str, str], plugin: Path) -> Iterator[Rig]:
    with short_tmpdir() as d:
        (d / "run").mkdir()
        fake = FakeIpamd(str(d / "run" / "ipamd.sock")).start()
        try:
            yield Rig(spaces[0], spaces[1], plugin, fake, d)
        finally:
            fake.stop()


PREV = {"cniVersion": "1.1.0", "interfaces": [{"name": "eni0123456789a"}, {"name": "eth0", "sandbox": "x"}],
        "ips": [{"address": "10.0.1.10/32", "interface": 1}]}


def not_a_namespace(workdir: Path) -> dict[str, str]:
    """Paths the plugin does not even open (a regular file it opens and passes on: ipamd refuses it)."""
    fifo = workdir / "fifo"
    if not fifo.exists():
        os.mkfifo(fifo)  # opening it would block: the plugin must not
    return {"a FIFO": str(fifo), "a directory": str(workdir), "a device": "/dev/null"}


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_a_netns_that_cannot_be_opened_as_one_is_code_4_before_any_request(rig: Rig, command: str) -> None:
    extra = {"prevResult": PREV} if command == "CHECK" else {}
    cases = {name: (path, "is not a namespace file") for name, path in not_a_namespace(rig.workdir).items()}
    cases["a missing path"] = ("/run/netns/pl7-none", "does not exist")
    for name, (path, says) in cases.items():
        started = time.monotonic()
        run = rig.run(command, netns=path, **extra)
        assert run.returncode == 1 and run.error["code"] == INVALID_ENV, (name, run.describe())
        assert says in run.error["msg"] and "CNI_NETNS" in run.error["msg"], (name, run.describe())
        assert time.monotonic() - started < 10, name
    assert rig.fake.requests == []


def test_a_del_whose_namespace_is_gone_goes_on_without_it(rig: Rig) -> None:
    for path in ("/run/netns/pl7-none", not_a_namespace(rig.workdir)["a FIFO"]):
        run = rig.run("DEL", netns=path)
        assert (run.returncode, run.stdout) == (0, ""), run.describe()
    assert [(r.op.value, r.netns) for r in rig.fake.requests] == [("DEL", "/run/netns/pl7-none"),
                                                                    ("DEL", str(rig.workdir / "fifo"))]


def test_a_del_whose_namespace_ipamd_refuses_fails_and_falls_back_to_nothing(rig: Rig) -> None:
    refusal = "netns '/proc/self/ns/net' is ipamd's own network namespace (the node's)"
    rig.fake.responder = lambda request: Response.failure(ErrorKind.INVALID_NETNS, refusal)
    run = rig.run("DEL", netns="/proc/self/ns/net", prevResult=PREV)
    assert run.returncode == 1 and run.error["code"] == INVALID_ENV, run.describe()
    assert "invalid CNI_NETNS" in run.error["msg"] and "ipamd's own" in run.error["msg"]
    assert not rig.record.exists()  # no release record, no local teardown: it was not a pod's DEL


def protocol_1_ipamd(request: Request) -> Response:
    """What an ipamd of protocol 1 answers a request of any other version (its handler, verbatim)."""
    return Response.failure(ErrorKind.UNSUPPORTED_VERSION,
                            f"protocol version {request.v} is not supported (ipamd speaks 1)")._replace(v=1)


def test_a_new_plugin_next_to_a_protocol_1_ipamd_gets_clear_answers_and_never_hangs(rig: Rig) -> None:
    rig.fake.responder = protocol_1_ipamd  # it reads lines with recv(2): the kernel drops the descriptor
    fds_before = set(os.listdir("/proc/self/fd"))  # the fake ipamd is this process
    cases: list[tuple[str, dict[str, Any]]] = [("ADD", {}), ("CHECK", {"prevResult": PREV})]
    for command, extra in cases:
        started = time.monotonic()
        run = rig.run(command, **extra)
        assert time.monotonic() - started < 5, run.describe()
        assert run.returncode == 1 and run.error["code"] == IPAMD_INCOMPATIBLE, run.describe()
        assert "protocol version 2 is not supported (ipamd speaks 1)" in run.error["msg"], run.describe()
        assert "upgrade the plugin and ipamd together" in run.error["msg"]
    run = rig.run("DEL")
    assert (run.returncode, run.stdout) == (0, ""), run.describe()
    assert rig.record.exists()  # the fallback: the release record the next ipamd replays
    run = rig.run("STATUS")
    assert run.returncode == 1 and run.error["code"] == STATUS_UNAVAILABLE, run.describe()
    assert [r.op.value for r in rig.fake.requests] == ["ADD", "CHECK", "DEL", "STATUS"]
    assert set(os.listdir("/proc/self/fd")) <= fds_before  # no descriptor it was sent stayed open
