"""The node's churn journal: when pods came and went, with what the pool held then. For ``vpccni tune``.

On-call asks "what if WARM_IP_TARGET were 5 here?". The answer is this node's own churn replayed through
the pool's code under other settings (``vpccni tune``), so ipamd keeps the churn: every ADD that got an
address (``A``), every ADD that found none (``N``), every DEL that released one (``D``), with the time,
a short token of the pod's key (to pair a DEL with its ADD without keeping container ids), and the
addresses the pool held and had assigned at that moment.

Format ``vpccni-churn/1``, text, one segment file per few MiB: a JSON header line (the journal's
version, the node, its instance type, the settings the environment gave ipamd, the wall-clock time the
segment starts), then one line per event: ``<ms since the segment start> <A|N|D> <token> <held>
<assigned>`` (about 25 bytes: a busy node's day of churn, 100,000 events, is ~2.5 MB).

Bounded: ``segments`` files of ``segment_bytes`` each at most, the oldest dropped when a new one starts
(3 x 2 MiB by default). Off the ADD path: :meth:`ChurnJournal.record` appends to a list in memory;
:meth:`ChurnJournal.flush` (a timer in the daemon) appends the lines to the current segment with one
write and no fsync, so a crash loses at most the last few seconds, and a torn last line is skipped by
the reader (:func:`parse`). Segments are fsynced when they are closed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

VERSION = "vpccni-churn/1"
SEGMENT_BYTES = 2 * 1024 * 1024
SEGMENTS = 3
KINDS = ("A", "N", "D")

log = logging.getLogger("ipamd.state.journal")


def token(container_id: str, ifname: str = "eth0") -> str:
    """A short, stable stand-in for a pod's key: pairs its DEL with its ADD, reveals nothing of it."""
    return hashlib.blake2s(f"{container_id}/{ifname}".encode(), digest_size=4).hexdigest()


@dataclass(frozen=True, slots=True)
class Event:
    t: float  # wall-clock seconds
    kind: str  # A (ADD got an address), N (ADD found none), D (DEL released one)
    pod: str  # token
    held: int  # addresses the pool held (pod-serving CIDRs)
    assigned: int


@dataclass(frozen=True)
class Journal:
    header: Mapping[str, Any]  # the newest segment's header (the node, its type, its settings)
    events: tuple[Event, ...]


class ChurnJournal:
    """Appends a node's churn to ``<path>.0``, ``<path>.1`` ... (the highest number is the newest)."""

    def __init__(self, path: str, header: Mapping[str, Any], *, clock: Callable[[], float] = time.time,
                 segment_bytes: int = SEGMENT_BYTES, segments: int = SEGMENTS) -> None:
        self.path = path
        self._header = dict(header)
        self._clock = clock
        self._segment_bytes = segment_bytes
        self._segments = max(segments, 1)
        self._pending: list[tuple[float, str, str, int, int]] = []
        self._start = 0.0
        self._size = 0
        self._index: int | None = None  # found on the first flush: building the journal does no I/O
        self._lock = threading.Lock()  # the flush timer's thread and /v1/journal's read
        self.records = 0
        self.failure = ""  # the last write that failed ("" = none since): the journal is lost, not ipamd

    def _existing(self) -> list[int]:
        folder, base = os.path.split(self.path)
        found = []
        for name in os.listdir(folder or "."):
            suffix = name[len(base) + 1:] if name.startswith(base + ".") else ""
            if suffix.isdigit():
                found.append(int(suffix))
        return sorted(found)

    def record(self, kind: str, pod: str, held: int, assigned: int) -> None:
        """One event, in memory (the ADD/DEL path): no I/O here."""
        self._pending.append((self._clock(), kind, pod, held, assigned))
        self.records += 1

    def flush(self) -> None:
        """Append what was recorded to the current segment (one write, no fsync); start a new segment
        when the current one is full, dropping the oldest beyond ``segments``. A journal is a diagnostic:
        a write that fails (no directory, read-only, disk full) drops these events with one warning per
        distinct error and never raises, so it cannot stop ipamd."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            try:
                if self._index is None:
                    self._index = max(self._existing(), default=-1)
                self._append(pending)
            except OSError as exc:
                if str(exc) != self.failure:
                    log.warning("churn journal %s: %d events not written: %s", self.path, len(pending), exc)
                self.failure = str(exc)
                self._size = 0  # start a new segment next time: the current one may be torn or gone
                return
            self.failure = ""

    def _append(self, pending: list[tuple[float, str, str, int, int]]) -> None:
        lines: list[str] = []
        for at, kind, pod, held, assigned in pending:
            if self._size == 0 or self._size >= self._segment_bytes:
                self._write("".join(lines))
                lines = []
                self._open_segment(at)
            line = f"{round((at - self._start) * 1000)} {kind} {pod} {held} {assigned}\n"
            lines.append(line)
            self._size += len(line)
        self._write("".join(lines))

    def _open_segment(self, start: float) -> None:
        assert self._index is not None
        if self._index >= 0 and os.path.exists(self._segment(self._index)):
            with open(self._segment(self._index), "ab") as previous:
                os.fsync(previous.fileno())  # a closed segment is durable; only the newest may be torn
        self._index += 1
        self._start = start
        header = json.dumps({"journal": VERSION, "start": start, **self._header}, separators=(",", ":"))
        with open(self._segment(self._index), "w") as segment:
            segment.write(header + "\n")
        self._size = len(header) + 1
        for old in self._existing():
            if old <= self._index - self._segments:
                os.unlink(self._segment(old))

    def _write(self, text: str) -> None:
        if text and self._index is not None:
            with open(self._segment(self._index), "a") as segment:
                segment.write(text)

    def _segment(self, index: int) -> str:
        return f"{self.path}.{index}"

    def read(self) -> bytes:
        """Every segment, oldest first (what /v1/journal serves)."""
        self.flush()
        out = []
        with self._lock:
            if not os.path.isdir(os.path.dirname(self.path) or "."):
                return b""  # nothing was ever written (the folder is not there)
            for index in self._existing():
                with open(self._segment(index), "rb") as segment:
                    out.append(segment.read())
        return b"".join(out)


def parse(text: str) -> Journal:
    """Events of one node's journal text (segments oldest first). Unreadable lines — a torn tail after a
    crash — are skipped; a segment without a readable header is skipped whole."""
    header: dict[str, Any] = {}
    events: list[Event] = []
    start: float | None = None
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                candidate = json.loads(line)
            except ValueError:
                start = None
                continue
            if candidate.get("journal") == VERSION:
                header, start = candidate, float(candidate["start"])
            continue
        if start is None:
            continue
        event = _event(line, start)
        if event is not None:
            events.append(event)
    events.sort(key=lambda e: e.t)
    return Journal({k: v for k, v in header.items() if k != "start"}, tuple(events))


def _event(line: str, start: float) -> Event | None:
    fields = line.split()
    if len(fields) != 5 or fields[1] not in KINDS:
        return None
    try:
        return Event(start + int(fields[0]) / 1000, fields[1], fields[2], int(fields[3]), int(fields[4]))
    except ValueError:
        return None
