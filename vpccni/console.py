"""What every command-line front end of vpccni shares (the CLI, the benchmarks, the demo, ipamd's bench
server): a bad input is one line on stderr and exit status 2, and a foreground command stops cleanly on
SIGTERM or SIGINT. Standard library only; imported by every layer that has a command line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is exactly one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def fail(prog: str, message: str) -> int:
    """Report a bad input in one line; return the exit status to use (2)."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    return 2


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while inside the block; the old handlers come back after."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
