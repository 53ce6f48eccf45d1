"""ipamd's conflist writer on its own (ipamd.app.conflist), in a temporary confdir: written only once
the node can serve, from the settings, atomically, idempotently; removed only on a clean stop with the
flag. tests/cloud/ipamd/test_conflist_writer.py runs the same through a real ipamd against the local cloud."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from ipamd.app.conflist import ConflistWriter, conflist_options
from vpccni.config.settings import Settings
from vpccni.node.conflist import CONFLIST_FILENAME, render_conflist


class Gate:
    """``can_serve`` as the test says."""

    def __init__(self) -> None:
        self.open = False

    def __call__(self) -> bool:
        return self.open


def settings(confdir: Path, **env: str) -> Settings:
    return Settings.from_env({"HOST_CNI_CONFDIR_PATH": str(confdir),
                              "VPCCNI_SOCKET_PATH": "/run/t/ipamd.sock",
                              "AWS_VPC_K8S_PLUGIN_LOG_FILE": "/var/log/t/plugin.log",
                              "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": "info", **env})


def entries(confdir: Path) -> list[str]:
    return sorted(os.listdir(confdir))


def identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_the_conflist_comes_from_the_settings(tmp_path: Path) -> None:
    with_bandwidth = settings(tmp_path, ENABLE_BANDWIDTH_PLUGIN="true")
    conflist = json.loads(render_conflist(conflist_options(with_bandwidth)))
    ours, *chained = conflist["plugins"]
    assert ours["type"] == "vpccni" and ours["ipamdSocket"] == "/run/t/ipamd.sock"
    assert ours["pluginLogFile"] == "/var/log/t/plugin.log" and ours["pluginLogLevel"].lower() == "info"
    assert [p["type"] for p in chained] == ["portmap", "bandwidth"]
    without = json.loads(render_conflist(conflist_options(settings(tmp_path))))
    assert [p["type"] for p in without["plugins"]] == ["vpccni", "portmap"], "portmap always"


def test_nothing_is_written_until_the_node_can_serve(tmp_path: Path) -> None:
    gate = Gate()
    writer = ConflistWriter(settings(tmp_path), gate)
    for _ in range(3):
        assert writer.sync() == "waiting"
    assert entries(tmp_path) == [] and not writer.in_place

    gate.open = True
    assert writer.sync() == "written"
    path = tmp_path / CONFLIST_FILENAME
    assert entries(tmp_path) == [CONFLIST_FILENAME], "no temporary file left behind"
    assert path.read_text() == writer.text and writer.in_place
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_identical_file_is_left_alone_even_before_the_pool_is_ready(tmp_path: Path) -> None:
    gate = Gate()
    gate.open = True
    ConflistWriter(settings(tmp_path), gate).sync()
    path = tmp_path / CONFLIST_FILENAME
    before = identity(path)

    gate.open = False  # a restarted ipamd whose pool is not ready yet
    again = ConflistWriter(settings(tmp_path), gate)
    assert again.sync() == "unchanged" and again.in_place
    gate.open = True
    assert again.sync() == "unchanged"
    assert identity(path) == before


def test_changed_settings_rewrite_it_once_the_node_can_serve(tmp_path: Path) -> None:
    gate = Gate()
    gate.open = True
    ConflistWriter(settings(tmp_path), gate).sync()
    path = tmp_path / CONFLIST_FILENAME

    gate.open = False
    upgraded = ConflistWriter(settings(tmp_path, ENABLE_BANDWIDTH_PLUGIN="true"), gate)
    assert upgraded.sync() == "waiting" and not upgraded.in_place
    assert "bandwidth" not in path.read_text(), "the old file stays while the node cannot serve"
    gate.open = True
    assert upgraded.sync() == "written"
    assert [p["type"] for p in json.loads(path.read_text())["plugins"]][-1] == "bandwidth"


def test_a_file_deleted_or_edited_by_hand_is_put_back(tmp_path: Path) -> None:
    gate = Gate()
    gate.open = True
    writer = ConflistWriter(settings(tmp_path), gate)
    writer.sync()
    path = tmp_path / CONFLIST_FILENAME
    path.unlink()
    assert writer.sync() == "written" and path.read_text() == writer.text
    path.write_text('{"cniVersion": "0.4.0"}')
    assert writer.sync() == "written" and path.read_text() == writer.text
    path.write_bytes(b"\xff\xfe not text")
    assert writer.sync() == "written" and path.read_text() == writer.text


def test_a_missing_confdir_is_a_failure_that_keeps_the_node_not_ready(tmp_path: Path) -> None:
    gate = Gate()
    gate.open = True
    writer = ConflistWriter(settings(tmp_path / "absent"), gate)
    assert writer.sync() == "failed" and not writer.in_place
    (tmp_path / "absent").mkdir()  # the mount appears: the next pass writes
    assert writer.sync() == "written" and writer.in_place


@pytest.mark.parametrize(("flag", "kept"), [("false", True), ("true", False)])
def test_a_clean_shutdown_removes_it_only_with_the_flag(tmp_path: Path, flag: str, kept: bool) -> None:
    gate = Gate()
    gate.open = True
    writer = ConflistWriter(settings(tmp_path, VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN=flag), gate)
    writer.sync()
    assert writer.clean_shutdown() is (not kept)
    assert (tmp_path / CONFLIST_FILENAME).exists() is kept
    assert writer.clean_shutdown() is False, "nothing to remove the second time"


def test_the_task_calls_back_each_time_the_file_comes_into_place(tmp_path: Path) -> None:
    gate = Gate()
    writer = ConflistWriter(settings(tmp_path, VPCCNI_POOL_LOOP_PERIOD="0.01"), gate)
    calls: list[bool] = []

    async def note() -> None:
        calls.append(writer.in_place)

    async def scenario() -> None:
        writer.on_in_place = note
        task = asyncio.create_task(writer.run())
        try:
            await asyncio.sleep(0.05)
            assert calls == [] and not (tmp_path / CONFLIST_FILENAME).exists()
            gate.open = True
            while not calls:
                await asyncio.sleep(0.01)
            (tmp_path / CONFLIST_FILENAME).unlink()  # put back by the next pass: a second callback
            while len(calls) < 2:
                await asyncio.sleep(0.01)
        finally:
            task.cancel()

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert calls == [True, True]
