"""A real ipamd against the local cloud writes its conflist only once the pool can serve an ADD, keeps it
across crashes and restarts, rewrites it when the settings change, and removes it on SIGTERM only with
VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN=true (ipamd.app.conflist)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ipamd.app.conflist import conflist_options
from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.config.settings import Settings
from vpccni.localcloud import LocalCloud
from vpccni.node.conflist import CONFLIST_FILENAME, render_conflist
from vpccni.wire.protocol import ErrorKind, NoIpReason

__all__ = ["ipamd_cloud", "run_ipamd"]

WAITING_LINE = "ipamd cannot serve an ADD yet"


def conflist_path(ipamd: Ipamd) -> Path:
    return Path(ipamd.env()["HOST_CNI_CONFDIR_PATH"]) / CONFLIST_FILENAME


def expected_text(ipamd: Ipamd) -> str:
    """What the settings this ipamd runs with give (read back from its own environment)."""
    return render_conflist(conflist_options(Settings.from_env(ipamd.env())))


def written(ipamd: Ipamd) -> str | None:
    path = conflist_path(ipamd)
    return path.read_text() if path.exists() else None


def refused_throttled(ipamd: Ipamd) -> bool:
    answer = ipamd.add("probe")
    assert not answer.ok and answer.error is not None and answer.error.kind is ErrorKind.NO_IP, answer
    return answer.error.reason is NoIpReason.THROTTLED


def free_addresses(ipamd: Ipamd) -> int:
    totals: dict[str, Any] = ipamd.pool()["totals"]
    return int(totals["total"]) - int(totals["assigned"]) - int(totals["cooling"])


def test_no_conflist_while_the_pool_is_empty_then_it_appears_once_it_can_serve(
    run_ipamd: Any, ipamd_cloud: LocalCloud
) -> None:
    ipamd_cloud.server.faults.inject("AssignPrivateIpAddresses", "RequestLimitExceeded")
    ipamd = run_ipamd("m5.large")
    # ipamd answers, its pool loop has tried and been throttled, and the writer has looked and waited.
    wait_until("an ADD refused as throttled", lambda: refused_throttled(ipamd))
    wait_until("the writer to say it waits", lambda: WAITING_LINE in ipamd.log(200))
    assert free_addresses(ipamd) == 0
    assert not conflist_path(ipamd).exists(), "no conflist while an ADD cannot be served"
    assert os.listdir(conflist_path(ipamd).parent) == [], "not even a temporary file"
    assert refused_throttled(ipamd) and not conflist_path(ipamd).exists()

    ipamd_cloud.server.faults.clear()
    text = wait_until("the conflist to appear", lambda: written(ipamd), timeout_s=30)
    assert free_addresses(ipamd) > 0, "it appeared with addresses to serve"
    assert text == expected_text(ipamd)
    conflist = json.loads(text)
    assert conflist["plugins"][0]["ipamdSocket"] == ipamd.paths.socket
    assert ipamd.add_ok("first-pod")


def test_sigterm_keeps_the_conflist_by_default_and_a_restart_leaves_it_alone(run_ipamd: Any) -> None:
    ipamd = run_ipamd("t3.small")
    wait_until("the conflist", lambda: written(ipamd))
    path = conflist_path(ipamd)
    before = path.stat()

    assert ipamd.stop() == 0, ipamd.log()
    assert path.read_text() == expected_text(ipamd), "a clean stop keeps it: pods keep running"
    ipamd.start()
    ipamd.kill()  # a crash keeps it too
    ipamd.start()
    wait_until("the pool to settle", ipamd.pool_settled)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "identical: left alone"


def test_sigterm_removes_it_with_the_flag(run_ipamd: Any) -> None:
    ipamd = run_ipamd("t3.small", {"VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN": "true"})
    wait_until("the conflist", lambda: written(ipamd))
    ipamd.kill()
    assert conflist_path(ipamd).exists(), "a crash never removes it, flag or not"
    ipamd.start()
    wait_until("the conflist", lambda: written(ipamd))
    assert ipamd.stop() == 0, ipamd.log()
    assert not conflist_path(ipamd).exists(), "the node goes NotReady on a clean stop"
    assert os.listdir(conflist_path(ipamd).parent) == []


def test_changed_settings_rewrite_it_after_a_restart(run_ipamd: Any) -> None:
    ipamd = run_ipamd("t3.small")
    first = wait_until("the conflist", lambda: written(ipamd))
    assert "bandwidth" not in first
    ipamd.stop()
    ipamd.settings["ENABLE_BANDWIDTH_PLUGIN"] = "true"
    ipamd.start()
    text = wait_until("the rewritten conflist", lambda: (t := written(ipamd)) and "bandwidth" in t and t)
    assert text == expected_text(ipamd)
    assert [p["type"] for p in json.loads(text)["plugins"]] == ["vpccni", "portmap", "bandwidth"]
