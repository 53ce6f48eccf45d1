"""How a benchmark that builds an emulated cluster runs from the command line: SIGTERM stops it as Ctrl-C
does (the harness's ``with`` blocks remove what it created), and an interruption or a failure is one line
on stderr and its exit status instead of a traceback."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

INTERRUPTED = 130
FAILED = 1


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run_cleanly(prog: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any] | int:
    """``measure()``'s report, or the exit status after one line on stderr (interrupted, failed)."""
    from vpccni.demo.run import one_line

    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return measure()
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted; what it had created is removed\n")
        return INTERRUPTED
    except Exception as exc:  # the cluster is gone already: its with-blocks ran
        sys.stderr.write(f"{prog}: failed: {one_line(exc)}\n")
        return FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
