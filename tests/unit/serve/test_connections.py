"""How a connection's bytes and descriptors become request lines (ipamd.serve.connections.Inbox): which
line a descriptor belongs to, at most one kept per line, the rest closed at once, all closed by close()."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ipamd.serve.connections import Inbox, Received


@pytest.fixture
def opened() -> Iterator[list[int]]:
    """Descriptors a test opens; the test checks which are still open, the fixture closes what is left."""
    fds: list[int] = []
    yield fds
    for fd in fds:
        if is_open(fd):
            os.close(fd)


def new_fd(opened: list[int]) -> int:
    fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    opened.append(fd)
    return fd


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def drain(inbox: Inbox) -> list[Received]:
    lines = []
    while (line := inbox.pop()) is not None:
        lines.append(line)
    return lines


def test_a_descriptor_goes_with_the_line_its_read_ends(opened: list[int]) -> None:
    inbox = Inbox(100)
    fd = new_fd(opened)
    inbox.feed(b"tail of an earlier line\n", [])
    inbox.feed(b"ADD\n", [fd])
    first, second = drain(inbox)
    assert (bytes(first.data), first.fds) == (b"tail of an earlier line", [])
    assert (bytes(second.data), second.fds, second.netns_fd) == (b"ADD", [fd], fd)


def test_a_read_that_ends_mid_line_gives_its_descriptor_to_that_line(opened: list[int]) -> None:
    inbox = Inbox(100)
    fd = new_fd(opened)
    inbox.feed(b"DEL\nAD", [fd])  # the ADD's sendmsg began after DEL's newline; the rest comes later
    [delete] = drain(inbox)
    assert delete.fds == []
    inbox.feed(b"D\n", [])
    [add] = drain(inbox)
    assert (bytes(add.data), add.fds) == (b"ADD", [fd])


def test_a_line_keeps_one_descriptor_and_the_others_are_closed_at_once(opened: list[int]) -> None:
    inbox = Inbox(100)
    first, second, third = new_fd(opened), new_fd(opened), new_fd(opened)
    inbox.feed(b"A", [first])
    inbox.feed(b"D", [second, third])
    assert not is_open(second) and not is_open(third)
    inbox.feed(b"D\n", [])
    [line] = drain(inbox)
    assert line.fds == [first] and "more than one descriptor" in line.problem
    line.close()
    assert not is_open(first)


def test_descriptors_the_kernel_dropped_make_the_line_malformed(opened: list[int]) -> None:
    inbox = Inbox(100)
    fd = new_fd(opened)
    inbox.feed(b"ADD\n", [fd], truncated=True)
    [line] = drain(inbox)
    assert "dropped (more than 4 at once" in line.problem
    line.close()


def test_an_overlong_line_ends_the_framing_and_its_descriptors_are_closed(opened: list[int]) -> None:
    inbox = Inbox(10)
    before, held, after = new_fd(opened), new_fd(opened), new_fd(opened)
    inbox.feed(b"ok\n", [before])
    inbox.feed(b"x" * 11, [held])
    inbox.feed(b"more\n", [after])  # after the framing was lost: dropped, its descriptor closed
    assert not is_open(after)
    ok, overlong = drain(inbox)
    assert (bytes(ok.data), ok.overlong) == (b"ok", False)
    assert overlong.overlong and overlong.fds == [held]
    for line in (ok, overlong):
        line.close()
    assert not is_open(before) and not is_open(held)


def test_close_closes_what_no_line_was_taken_for(opened: list[int]) -> None:
    inbox = Inbox(100)
    ready, partial = new_fd(opened), new_fd(opened)
    inbox.feed(b"ADD\n", [ready])
    inbox.feed(b"ADD without its newline", [partial])  # the client went away mid-line
    inbox.close()
    assert not is_open(ready) and not is_open(partial)
