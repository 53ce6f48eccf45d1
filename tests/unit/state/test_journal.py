"""The churn journal: events in memory until a flush, segments bounded and rotated, a torn tail skipped,
and the datastore tells it of every ADD (got one / found none) and DEL."""

from __future__ import annotations

import logging
import os

import pytest

from ipamd.state.datastore import AllocationKey, Datastore
from ipamd.state.journal import VERSION, ChurnJournal, parse, token


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_recording_touches_no_file_until_a_flush(tmp_path) -> None:
    clock = Clock()
    journal = ChurnJournal(str(tmp_path / "ipam.json.churn"), {"instance_type": "m5.large"}, clock=clock)
    journal.record("A", "abcd0001", 9, 1)
    assert os.listdir(tmp_path) == []
    clock.now += 1.5
    journal.record("D", "abcd0001", 9, 0)
    journal.flush()
    parsed = parse(journal.read().decode())
    assert parsed.header == {"journal": VERSION, "instance_type": "m5.large"}
    assert [(e.kind, e.pod, e.held, e.assigned) for e in parsed.events] == [("A", "abcd0001", 9, 1),
                                                                             ("D", "abcd0001", 9, 0)]
    assert parsed.events[1].t - parsed.events[0].t == pytest.approx(1.5)


def test_a_journal_that_cannot_be_written_never_stops_ipamd(tmp_path, caplog) -> None:
    """No folder yet (ipamd's state directory not mounted, read-only, disk full): building the journal does
    no I/O, a flush drops its events with one warning per distinct error, and writing resumes once the
    folder is there."""
    caplog.set_level(logging.WARNING, logger="ipamd.state.journal")  # whatever other tests set "ipamd" to
    folder = tmp_path / "run"
    journal = ChurnJournal(str(folder / "ipam.json.churn"), {}, clock=Clock())
    for _ in range(2):
        journal.record("A", "abcd0001", 9, 1)
        journal.flush()
    assert "No such file or directory" in journal.failure and not folder.exists()
    assert len([r for r in caplog.records if "not written" in r.getMessage()]) == 1
    assert journal.read() == b""
    folder.mkdir()
    journal.record("A", "abcd0002", 9, 2)
    journal.flush()
    assert journal.failure == ""
    assert [e.pod for e in parse(journal.read().decode()).events] == ["abcd0002"]


def test_segments_are_bounded_and_the_oldest_dropped(tmp_path) -> None:
    clock = Clock()
    journal = ChurnJournal(str(tmp_path / "j"), {}, clock=clock, segment_bytes=200, segments=3)
    for n in range(100):
        clock.now += 1
        journal.record("A", f"{n:08x}", n, n)
        journal.flush()
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 3 and all(os.path.getsize(tmp_path / f) < 400 for f in files)
    events = parse(journal.read().decode()).events
    assert events[-1].pod == f"{99:08x}" and len(events) < 100, "the oldest segments are gone"
    assert [e.held for e in events] == sorted(e.held for e in events)


def test_a_torn_tail_and_a_foreign_segment_are_skipped(tmp_path) -> None:
    clock = Clock()
    journal = ChurnJournal(str(tmp_path / "j"), {"instance_type": "m5.large"}, clock=clock)
    journal.record("A", "00000001", 9, 1)
    journal.flush()
    with open(tmp_path / "j.0", "a") as segment:
        segment.write("1200 D 0000")  # the crash cut the line
    text = '{"journal": "someone-else/9", "start": 1}\n5 A ffffffff 1 1\n' + journal.read().decode()
    assert [e.pod for e in parse(text).events] == ["00000001"]


def test_a_restarted_journal_starts_a_new_segment(tmp_path) -> None:
    clock = Clock()
    first = ChurnJournal(str(tmp_path / "j"), {"settings": {"WARM_IP_TARGET": "2"}}, clock=clock)
    first.record("A", "00000001", 9, 1)
    first.flush()
    second = ChurnJournal(str(tmp_path / "j"), {"settings": {"WARM_IP_TARGET": "5"}}, clock=clock)
    second.record("D", "00000001", 9, 0)
    second.flush()
    assert sorted(os.listdir(tmp_path)) == ["j.0", "j.1"]
    parsed = parse(second.read().decode())
    assert parsed.header["settings"] == {"WARM_IP_TARGET": "5"} and len(parsed.events) == 2


def test_the_datastore_reports_every_add_and_del_with_what_the_pool_held() -> None:
    ds = Datastore(cooldown_s=30)
    seen: list[tuple[str, str, int, int]] = []
    ds.on_event = lambda kind, key, held, assigned: seen.append((kind, key.container_id, held, assigned))
    ds.add_eni("eni-0", 0, True)
    ds.add_cidrs("eni-0", ["10.0.0.5/32", "10.0.0.6/32"])
    a, b, c = (AllocationKey("net", name, "eth0") for name in ("a", "b", "c"))
    ds.assign(a)
    ds.assign(a)  # idempotent: no second event
    ds.assign(b)
    ds.assign(c)  # none free
    ds.release(b)
    ds.release(a, cooldown=False)  # an ADD rolled back: no churn
    assert seen == [("A", "a", 2, 1), ("A", "b", 2, 2), ("N", "c", 2, 2), ("D", "b", 2, 1)]


def test_tokens_are_short_stable_and_distinct() -> None:
    assert token("abc") == token("abc", "eth0") != token("abd") and len(token("abc")) == 8
