"""A cluster benchmark from the command line: SIGTERM stops it as Ctrl-C does, a failure is one line."""

from __future__ import annotations

import os
import signal
from typing import Any

from vpccni.benchmarks.harness_run import FAILED, INTERRUPTED, run_cleanly


def test_the_report_comes_back() -> None:
    assert run_cleanly("bench", lambda: {"ok": True}) == {"ok": True}


def test_a_failure_is_one_line_and_status_1(capsys) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("ipamd exited\nlog tail")

    assert run_cleanly("bench", broken) == FAILED
    assert capsys.readouterr().err == "bench: failed: RuntimeError: ipamd exited | log tail\n"


def test_sigterm_interrupts_like_ctrl_c_and_the_old_handler_comes_back(capsys) -> None:
    before = signal.getsignal(signal.SIGTERM)

    def terminated() -> dict[str, Any]:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt")

    assert run_cleanly("bench", terminated) == INTERRUPTED
    assert "interrupted; what it had created is removed" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before
