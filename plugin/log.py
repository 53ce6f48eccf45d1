"""The plugin's log: one line per event, to stderr or to ``pluginLogFile``, never to stdout.

stdout carries the CNI result, so nothing else may be written there. Not the ``logging`` module:
its import costs more than the rest of a plugin run, and the plugin writes a handful of lines.
A log that cannot be written never fails the plugin; the line goes to stderr instead.
"""

from __future__ import annotations

import os
import sys
import time

# Annotations only: `import typing` at run time would cost ~1.5 ms on every plugin exec.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

_RANK = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "fatal": 50}


class PluginLog:
    """Lines prefixed with time, level, pid and what the plugin is working on."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._path = ""
        self._min_rank = _RANK["info"]
        self.context = ""

    def configure(self, path: str, level: str) -> None:
        self._path = path
        self._min_rank = _RANK.get(level, _RANK["info"])

    def debug(self, msg: str) -> None:
        self._write("debug", msg)

    def info(self, msg: str) -> None:
        self._write("info", msg)

    def warn(self, msg: str) -> None:
        self._write("warn", msg)

    def error(self, msg: str) -> None:
        self._write("error", msg)

    def _append(self, line: str) -> None:
        try:
            f = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 (retried below)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self._path) or ".", exist_ok=True)
            f = open(self._path, "a", encoding="utf-8")  # noqa: SIM115
        with f:
            f.write(line)

    def _write(self, level: str, msg: str) -> None:
        if _RANK[level] < self._min_rank:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        line = f"{stamp} {level.upper()} vpccni[{os.getpid()}] {self.context} {msg}\n"
        if self._path:
            try:
                self._append(line)
                return
            except OSError as exc:
                line += f"(could not write {self._path}: {exc.strerror})\n"
        try:
            self._stream.write(line)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stderr closed by the runtime: nowhere left to report
