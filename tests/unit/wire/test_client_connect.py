"""The one client (vpccni.wire.client) against plain sockets: a full listen queue is waited out within the
verb's deadline (it was a failure in 0 ms), nobody listening still fails at once, and the
namespace descriptor arrives with the request line."""

from __future__ import annotations

import array
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpccni.wire.client import IpamdTimeout, IpamdUnreachable, call
from vpccni.wire.protocol import Op, Request, Response, encode_response

PING = Request(op=Op.PING)
ANSWER = encode_response(Response(ok=True, status={"ready": True}))


@pytest.fixture
def path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="vpccni-cli-")  # short: a socket path must fit in 108 bytes
    yield os.path.join(directory, "ipamd.sock")
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)


def full_queue(path: str) -> tuple[socket.socket, socket.socket]:
    """A listener that takes no connection yet, its queue (of one) already taken by another client."""
    listener = socket.socket(socket.AF_UNIX)
    listener.settimeout(10)
    listener.bind(path)
    listener.listen(0)  # Linux queues backlog + 1
    waiting = socket.socket(socket.AF_UNIX)
    waiting.connect(path)
    probe = socket.socket(socket.AF_UNIX)
    probe.setblocking(False)
    with pytest.raises(BlockingIOError):
        probe.connect(path)  # the queue is full: what a plugin meets while ipamd is stalled
    probe.close()
    return listener, waiting


def in_thread(func: object) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def body() -> None:
        try:
            outcome.append(func())  # type: ignore[operator]
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    return thread, outcome


def test_a_full_listen_queue_is_waited_out_within_the_deadline(path: str) -> None:
    listener, waiting = full_queue(path)
    try:
        started = time.monotonic()
        thread, outcome = in_thread(lambda: call(path, PING, timeout_s=5))
        time.sleep(0.3)  # ipamd stalled
        listener.accept()[0].close()  # it runs again: the queue drains, the retry gets in
        conn, _ = listener.accept()
        with conn:
            assert conn.makefile("rb").readline()
            conn.sendall(ANSWER)
        thread.join(10)
        assert isinstance(outcome[0], Response) and outcome[0].ok, outcome
        assert time.monotonic() - started >= 0.3
    finally:
        waiting.close()
        listener.close()


def test_a_queue_that_stays_full_is_a_timeout_at_the_deadline_not_before(path: str) -> None:
    listener, waiting = full_queue(path)
    try:
        started = time.monotonic()
        with pytest.raises(IpamdTimeout, match="queue of waiting connections stayed full"):
            call(path, PING, timeout_s=0.5)
        assert 0.45 <= time.monotonic() - started < 2
    finally:
        waiting.close()
        listener.close()


def test_nobody_listening_fails_at_once(path: str) -> None:
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)  # the socket file a killed ipamd leaves
    dead.close()
    started = time.monotonic()
    with pytest.raises(IpamdUnreachable, match="not reachable"):
        call(path, PING, timeout_s=5)
    assert time.monotonic() - started < 0.5


def test_the_namespace_descriptor_arrives_with_the_request_line(path: str, tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX)
    listener.settimeout(10)
    listener.bind(path)
    listener.listen(1)
    marker = tmp_path / "ns"
    marker.write_text("")
    sent = os.open(marker, os.O_RDONLY)
    try:
        thread, outcome = in_thread(lambda: call(path, PING, timeout_s=5, netns_fd=sent))
        conn, _ = listener.accept()
        with conn:
            data, ancillary, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
            assert data.endswith(b"\n") and b'"op":"PING"' in data
            [(level, kind, payload)] = ancillary
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
            [received] = array.array("i", payload)
            try:
                assert os.fstat(received).st_ino == os.fstat(sent).st_ino
            finally:
                os.close(received)
            conn.sendall(ANSWER)
        thread.join(10)
        assert isinstance(outcome[0], Response) and outcome[0].ok, outcome
        os.fstat(sent)  # still the caller's, open
    finally:
        os.close(sent)
        listener.close()
