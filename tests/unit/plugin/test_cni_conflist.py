"""The shipped conflist (vpccni.node.conflist), the launcher (vpccni.node.launcher), release records."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from plugin import cni, netconf
from plugin.release import write_release_record
from vpccni.node import launcher as cni_install
from vpccni.node.conflist import DISABLE_POD_V6_SYSCTLS, ConflistOptions, build_conflist, render_conflist
from vpccni.wire.protocol import (
    Op,
    PodRef,
    Request,
    decode_request,
    release_record_name,
    spool_dir_for,
)


def test_default_conflist_is_the_documented_one() -> None:
    assert build_conflist() == {
        "cniVersion": "1.0.0",
        "cniVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        "name": "vpccni",
        "plugins": [
            {"type": "vpccni", "ipamdSocket": "/run/vpccni/ipamd.sock"},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def test_conflist_versions_are_all_spoken_by_the_plugin() -> None:
    conflist = build_conflist()
    assert {conflist["cniVersion"], *conflist["cniVersions"]} <= set(cni.SUPPORTED_VERSIONS)


def test_every_option_lands_where_the_plugin_and_chain_read_it() -> None:
    opts = ConflistOptions(
        name="pl7net",
        ipamd_socket="/run/x/ipamd.sock",
        plugin_log_file="/var/log/p.log",
        plugin_log_level="Debug",
        ipamd_timeout_ms=3000,
        portmap=False,
        bandwidth=True,
        tuning_sysctls=DISABLE_POD_V6_SYSCTLS,
        disable_check=True,
    )
    conflist = build_conflist(opts)
    assert conflist["name"] == "pl7net" and conflist["disableCheck"] is True
    assert conflist["plugins"] == [
        {
            "type": "vpccni",
            "ipamdSocket": "/run/x/ipamd.sock",
            "pluginLogFile": "/var/log/p.log",
            "pluginLogLevel": "Debug",
            "ipamdTimeoutMs": 3000,
        },
        {"type": "tuning", "sysctl": dict(sorted(DISABLE_POD_V6_SYSCTLS.items()))},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    ]
    # Our plugin's slice, as libcni derives it, is accepted by the plugin's own parser.
    ours = {**conflist["plugins"][0], "name": conflist["name"], "cniVersion": "1.0.0"}
    parsed = netconf.parse_netconf(json.dumps(ours).encode(), "ADD")
    assert (parsed.ipamd_socket, parsed.timeout_ms, parsed.log_file, parsed.log_level) == (
        "/run/x/ipamd.sock",
        3000,
        "/var/log/p.log",
        "debug",
    )


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        (ConflistOptions(name="bad name"), "name"),
        (ConflistOptions(ipamd_socket="rel.sock"), "socket"),
        (ConflistOptions(plugin_log_file="stdout"), "stdout"),
    ],
)
def test_bad_options_are_refused_naming_them(opts: ConflistOptions, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        build_conflist(opts)


def test_render_is_stable_json() -> None:
    assert render_conflist() == render_conflist()
    assert json.loads(render_conflist()) == build_conflist()


# --- launcher --------------------------------------------------------------------------------------


def test_launcher_text() -> None:
    text = cni_install.render_launcher("/venv/bin/python", "/srv/pkg", ["/venv/lib/site-packages"])
    lines = text.splitlines()
    assert lines[0] == "#!/venv/bin/python -IS"
    assert "sys.path[:0] = ['/srv/pkg']" in lines and "sys.path += ['/venv/lib/site-packages']" in lines
    assert lines[-2:] == ["from plugin.main import main", "sys.exit(main())"]
    compile(text, "launcher", "exec")


@pytest.mark.parametrize(
    ("python", "root"),
    [
        ("python3", "/srv"),
        ("/my python/bin/python", "/srv"),
        ("/" + "p" * 260, "/srv"),
        ("/usr/bin/python3", "rel"),
    ],
)
def test_launcher_refuses_what_a_shebang_or_sys_path_cannot_hold(python: str, root: str) -> None:
    with pytest.raises(ValueError):
        cni_install.render_launcher(python, root)


def test_install_launcher_writes_an_executable_atomically(tmp_path: Path) -> None:
    path = cni_install.install_launcher(str(tmp_path / "bin"))
    assert path == str(tmp_path / "bin" / "vpccni")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    text = Path(path).read_text()
    assert text.startswith(f"#!{sys.executable} -IS\n")
    assert repr(cni_install.package_root()) in text
    assert os.listdir(tmp_path / "bin") == ["vpccni"]  # no temp file left behind


def test_package_root_holds_both_packages() -> None:
    root = Path(cni_install.package_root())
    assert (root / "plugin" / "main.py").is_file() and (root / "vpccni" / "wire" / "protocol.py").is_file()


def test_install_refuses_a_root_without_the_plugin(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="plugin/main.py"):
        cni_install.install_launcher(str(tmp_path / "bin"), root=str(tmp_path))


# --- release records -------------------------------------------------------------------------------


def test_release_record_is_a_replayable_del(tmp_path: Path) -> None:
    socket_path = str(tmp_path / "run" / "ipamd.sock")
    request = Request(
        op=Op.DEL,
        network="vpccni",
        container_id="c1",
        ifname="eth0",
        netns="/run/netns/p",
        pod=PodRef(namespace="ns", name="web"),
        prev_result={"ips": [{"address": "10.0.1.10/32"}]},
        deadline_ms=4500,
    )
    path = write_release_record(socket_path, request)
    assert path == os.path.join(spool_dir_for(socket_path), release_record_name("vpccni", "c1", "eth0"))
    replayed = decode_request(Path(path).read_bytes())
    assert replayed.op is Op.DEL and replayed.key == ("vpccni", "c1", "eth0")
    assert replayed.pod == request.pod and replayed.prev_result == request.prev_result
    assert replayed.reason == "IpamdUnavailable"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # A repeated DEL rewrites the same record, never leaves a temp file.
    write_release_record(socket_path, request)
    assert os.listdir(spool_dir_for(socket_path)) == [os.path.basename(path)]


def test_release_record_failure_is_an_os_error(tmp_path: Path) -> None:
    blocker = tmp_path / "run"
    blocker.write_text("a file where the spool's parent should be")
    with pytest.raises(OSError):
        write_release_record(
            str(blocker / "ipamd.sock"), Request(op=Op.DEL, network="n", container_id="c", ifname="eth0")
        )


def test_a_repeated_del_that_knows_less_keeps_what_the_record_knew(tmp_path: Path) -> None:
    socket_path = str(tmp_path / "ipamd.sock")
    first = Request(
        op=Op.DEL,
        network="n",
        container_id="c",
        ifname="eth0",
        pod=PodRef("ns", "web"),
        prev_result={"ips": [{"address": "10.0.1.10/32"}]},
    )
    path = write_release_record(socket_path, first)
    write_release_record(socket_path, Request(op=Op.DEL, network="n", container_id="c", ifname="eth0"))
    replayed = decode_request(Path(path).read_bytes())
    assert replayed.prev_result == first.prev_result and replayed.pod == first.pod
    newer = {"ips": [{"address": "10.0.1.99/32"}]}
    write_release_record(
        socket_path, Request(op=Op.DEL, network="n", container_id="c", ifname="eth0", prev_result=newer)
    )
    assert decode_request(Path(path).read_bytes()).prev_result == newer
