"""The plugin through a real CNI runtime library (libcni 1.1.2, via tests/tools/libcni-driver):
libcni parses our result for every version it knows (it rejects a malformed one), caches it and
feeds it back to CHECK and DEL; the shipped conflist works on it with portmap chained after us; GC and
STATUS (which libcni 1.1.2 predates) go through the harness, derived from the same conflist."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.libcni import Libcni, build_driver, exec_plugin, gc_config, k8s_args, request_config
from tests.net.plugin.test_plugin_harness import (
    CONTAINER_MAC,
    HOST_MAC,
    FakeIpamd,
    in_netns,
    install_plugin,
    netns,
    sh,
    short_tmpdir,
)
from vpccni.node.conflist import ConflistOptions, build_conflist
from vpccni.wire.cnicodes import TRY_AGAIN_LATER
from vpccni.wire.protocol import CniAttachment, Op, decode_request, release_record_name, spool_dir_for

LIBCNI_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")  # what libcni 1.1.2 can parse
DEBIAN_PLUGINS = Path("/usr/lib/cni")
ARGS = k8s_args("ns1", "web-0", "uid-1", "infra")


@pytest.fixture(scope="session")
def driver() -> Path:
    return build_driver()


@pytest.fixture(scope="module")
def spaces() -> Iterator[tuple[str, str]]:
    pid = os.getpid() % 100000
    with netns(f"pl7l{pid}"), netns(f"pl7m{pid}") as pod:
        yield f"pl7l{pid}", pod


@dataclass
class Rig:
    node: str
    pod_netns: str
    dir: Path
    plugin: Path
    fake: FakeIpamd
    driver: Path

    @property
    def socket(self) -> str:
        return self.fake.socket_path

    def libcni(self, conflist: dict[str, Any]) -> Libcni:
        conf = self.dir / "net.conflist"
        conf.write_text(json.dumps(conflist))
        return Libcni(
            self.driver,
            conf,
            [self.plugin.parent, DEBIAN_PLUGINS],
            self.dir / "cache",
            prefix=in_netns(self.node),
        )

    def only_us(self, version: str) -> dict[str, Any]:
        return {
            "cniVersion": version,
            "name": "pl7net",
            "plugins": [{"type": "vpccni", "ipamdSocket": self.socket}],
        }


@pytest.fixture
def rig(spaces: tuple[str, str], driver: Path) -> Iterator[Rig]:
    with short_tmpdir() as d:
        plugin = install_plugin(d / "bin")
        fake = FakeIpamd(str(d / "ipamd.sock")).start()
        try:
            yield Rig(spaces[0], spaces[1], d, plugin, fake, driver)
        finally:
            fake.stop()


@pytest.mark.parametrize("version", LIBCNI_VERSIONS)
def test_add_check_del_cycle_through_libcni(rig: Rig, version: str) -> None:
    cni = rig.libcni(rig.only_us(version))
    add = cni.add("cid1", rig.pod_netns, args=ARGS)
    assert add.returncode == 0, add.describe()
    result = add.json()
    assert result["cniVersion"] == version
    assert [(i["name"], i["mac"], i.get("sandbox")) for i in result["interfaces"]] == [
        ("eni0123456789a", HOST_MAC, None),
        ("eth0", CONTAINER_MAC, rig.pod_netns),
    ]
    [ip] = result["ips"]
    assert (ip["address"], ip["gateway"], ip["interface"]) == ("10.0.1.10/32", "169.254.1.1", 1)
    assert ip.get("version") == ("4" if version != "1.0.0" else None)
    assert cni.cached("cid1", args=ARGS).json() == result

    if version >= "0.4.0":
        check = cni.check("cid1", rig.pod_netns, args=ARGS)
        assert check.returncode == 0, check.describe()
        assert rig.fake.requests[-1].op is Op.CHECK and rig.fake.requests[-1].prev_result == result
    delete = cni.delete("cid1", rig.pod_netns, args=ARGS)
    assert delete.returncode == 0, delete.describe()
    req = rig.fake.requests[-1]
    assert (req.op, req.key) == (Op.DEL, ("pl7net", "cid1", "eth0"))
    assert req.prev_result == (result if version >= "0.4.0" else None)  # libcni sends it from 0.4.0
    assert cni.cached("cid1", args=ARGS).json() is None  # the runtime forgot it


def test_libcni_sees_our_version_answer(rig: Rig) -> None:
    run = rig.libcni(rig.only_us("1.0.0")).version("vpccni")
    assert run.json() == {"supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}, run.describe()


def test_libcni_1_1_cannot_take_a_1_1_0_conflist(rig: Rig) -> None:
    """Why the shipped conflist says cniVersion 1.0.0 (issue 4): this runtime library refuses 1.1.0."""
    run = rig.libcni(rig.only_us("1.1.0")).add("cid2", rig.pod_netns, args=ARGS)
    assert run.returncode != 0 and "1.1.0" in run.stderr, run.describe()


def test_the_cni_error_reaches_the_runtime_with_its_code(rig: Rig) -> None:
    rig.fake.stop()
    run = rig.libcni(rig.only_us("1.0.0")).add("cid3", rig.pod_netns, args=ARGS)
    assert run.returncode == 1 and run.json()["code"] == TRY_AGAIN_LATER, run.describe()


def test_del_through_libcni_with_ipamd_down_spools_the_cached_result(rig: Rig) -> None:
    cni = rig.libcni(rig.only_us("1.0.0"))
    result = cni.add("cid4", rig.pod_netns, args=ARGS).json()
    rig.fake.stop()
    for _ in range(2):  # repeated
        run = cni.delete("cid4", rig.pod_netns, args=ARGS)
        assert run.returncode == 0, run.describe()
    record = Path(spool_dir_for(rig.socket)) / release_record_name("pl7net", "cid4", "eth0")
    replayed = decode_request(record.read_bytes())
    assert replayed.op is Op.DEL and replayed.prev_result == result


# --- the shipped conflist ----------------------------------------------------------------------------


def shipped(rig: Rig, **options: Any) -> dict[str, Any]:
    return build_conflist(ConflistOptions(name="pl7net", ipamd_socket=rig.socket, **options))


def nat_rules(node: str) -> str:
    return sh("ip", "netns", "exec", node, "iptables", "-t", "nat", "-S")


def test_shipped_conflist_runs_on_libcni_with_portmap_chained(rig: Rig) -> None:
    cni = rig.libcni(shipped(rig))
    ports = {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}
    add = cni.add("cid5", rig.pod_netns, args=ARGS, cap_args=ports)
    assert add.returncode == 0, add.describe()
    result = add.json()
    assert result["cniVersion"] == "1.0.0" and result["ips"][0]["address"] == "10.0.1.10/32"
    # portmap read our result (the container address) and wrote its DNAT in the node namespace.
    rules = nat_rules(rig.node)
    assert "--dport 18080" in rules and "10.0.1.10:80" in rules, rules
    delete = cni.delete("cid5", rig.pod_netns, args=ARGS, cap_args=ports)
    assert delete.returncode == 0, delete.describe()
    assert "10.0.1.10:80" not in nat_rules(rig.node)
    assert rig.fake.ops == ["ADD", "DEL"]


def test_shipped_conflist_add_check_del_without_port_mappings(rig: Rig) -> None:
    # (With port mappings, Debian's portmap 1.1.1 fails CHECK on any IPv4-only result: "could not
    # check ipv6 dnat" -- a bug of Debian's portmap 1.1.1 on IPv4-only results; ConflistOptions.disable_check
    # exists for it.)
    cni = rig.libcni(shipped(rig))
    assert cni.add("cid8", rig.pod_netns, args=ARGS).returncode == 0
    check = cni.check("cid8", rig.pod_netns, args=ARGS)
    assert check.returncode == 0, check.describe()
    assert cni.delete("cid8", rig.pod_netns, args=ARGS).returncode == 0
    assert rig.fake.ops == ["ADD", "CHECK", "DEL"]


def test_shipped_conflist_with_bandwidth_chained_passes_our_result_through(rig: Rig) -> None:
    cni = rig.libcni(shipped(rig, bandwidth=True))
    add = cni.add("cid6", rig.pod_netns, args=ARGS)
    assert add.returncode == 0, add.describe()
    assert [i["name"] for i in add.json()["interfaces"]] == ["eni0123456789a", "eth0"]
    assert cni.delete("cid6", rig.pod_netns, args=ARGS).returncode == 0


def test_gc_and_status_from_the_shipped_conflist_at_its_highest_version(rig: Rig) -> None:
    conflist = shipped(rig)
    plugin = in_netns(rig.node, str(rig.plugin))
    gc = exec_plugin(plugin, "GC", gc_config(conflist, [("cid7", "eth0")]), cni_path=str(rig.plugin.parent))
    assert gc.returncode == 0, gc.describe()
    [req] = rig.fake.requests
    assert req.op is Op.GC and req.valid_attachments == (CniAttachment("cid7", "eth0"),)
    status = exec_plugin(plugin, "STATUS", request_config(conflist))
    assert (status.returncode, status.stdout) == (0, ""), status.describe()
    rig.fake.stop()
    down = exec_plugin(plugin, "STATUS", request_config(conflist))
    assert down.returncode == 1 and down.error["code"] == 50 and down.error["cniVersion"] == "1.1.0"
