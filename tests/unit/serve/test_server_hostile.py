"""Local clients that misbehave, over the real socket: lines the codec cannot read (too deep, a lone
surrogate, a NUL) are answered bad_request without a traceback; silent connections neither pile up nor
outlast their idle time; a burst of connections while ipamd is stalled waits in the listen queue instead of
being refused.
(RLIMIT_NOFILE exhaustion with the whole daemon: tests/cloud/ipamd/test_ipamd_fd_exhaustion.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time

import pytest

from ipamd.serve.server import ServerSettings
from tests.unit.serve.server_harness import NETNS, running_ipamd
from vpccni.wire.client import call
from vpccni.wire.protocol import MAX_LINE_BYTES, ErrorKind, Op, Request, decode_response


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


# Version 1 (the oldest ipamd serves): whether a line can be read at all does not depend on its version.
PING = b'{"v": 1, "op": "PING"}\n'
ADD_FIELDS = '"v": 1, "op": "ADD", "network": "vpccni", "container_id": "c1", "ifname": "eth0"'
DEL_FIELDS = b'"v": 1, "op": "DEL", "network": "n", "container_id": "c"'


def lines_no_codec_reads() -> dict[str, bytes]:
    deep = 100_000
    return {
        "nested too deeply": b"[" * deep + b"]" * deep + b"\n",
        "nested too deeply in prev_result": (
            b"{" + DEL_FIELDS + b', "ifname": "eth0", "prev_result": ' + b'{"a": ' * deep + b"1" + b"}" * deep
            + b"}\n"
        ),
        "not UTF-8": b'{"v": 1, "op": "\xff\xfe"}\n',
        "lone surrogate in netns": f'{{{ADD_FIELDS}, "netns": "/run/netns/\\ud800"}}\n'.encode(),
        "NUL in netns": f'{{{ADD_FIELDS}, "netns": "/run/netns/x\\u0000y"}}\n'.encode(),
        "lone surrogate in ifname": b"{" + DEL_FIELDS + b', "ifname": "e\\udfff"}\n',
        "NUL in a pod name": f'{{{ADD_FIELDS}, "pod": {{"name": "web\\u0000"}}}}\n'.encode(),
        "lone surrogate in prev_result": (
            b"{" + DEL_FIELDS + b', "ifname": "eth0", "prev_result": {"interfaces": [{"name": "\\ud834"}]}}\n'
        ),
    }


@pytest.mark.parametrize("name", lines_no_codec_reads())
def test_every_undecodable_line_is_answered_bad_request_without_a_traceback(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    line = lines_no_codec_reads()[name]

    async def main() -> None:
        async with running_ipamd() as ipamd:
            caplog.clear()
            reader, writer = await asyncio.open_unix_connection(ipamd.socket_path, limit=2 * MAX_LINE_BYTES)
            try:
                writer.write(line)
                answer = await asyncio.wait_for(reader.readline(), 10)
                assert answer, "no answer: the connection was dropped"
                resp = decode_response(answer)
                assert resp.error is not None and resp.error.kind is ErrorKind.BAD_REQUEST, resp
                assert "malformed request" in resp.error.message
                writer.write(PING)
                assert decode_response(await asyncio.wait_for(reader.readline(), 10)).ok  # still serving
            finally:
                writer.close()
            assert ipamd.datastore.allocations() == []
            assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []

    run(main())


def test_a_silent_connection_is_closed_after_the_idle_timeout() -> None:
    async def main() -> None:
        async with running_ipamd(settings=ServerSettings(idle_timeout_s=0.3)) as ipamd:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_UNIX) as silent, socket.socket(socket.AF_UNIX) as slow:
                for sock in (silent, slow):
                    sock.setblocking(False)
                    sock.connect(ipamd.socket_path)
                started = time.monotonic()
                slow.send(b'{"v": 2, ')  # a request begun and never finished counts as silence too
                assert await asyncio.wait_for(loop.sock_recv(silent, 100), 5) == b""
                assert await asyncio.wait_for(loop.sock_recv(slow, 100), 5) == b""
                assert 0.25 < time.monotonic() - started < 3
            assert (await ipamd.call(Request(op=Op.PING))).ok

    run(main())


def test_connections_beyond_the_limit_take_the_place_of_the_longest_idle_ones() -> None:
    async def main() -> None:
        async with running_ipamd(settings=ServerSettings(max_connections=8)) as ipamd:
            silent = [socket.socket(socket.AF_UNIX) for _ in range(50)]
            try:
                for sock in silent:
                    sock.setblocking(False)
                    sock.connect(ipamd.socket_path)
                    await asyncio.sleep(0)  # the server accepts as they come
                resp = await asyncio.wait_for(ipamd.call(Request(op=Op.PING)), 5)
                assert resp.ok
                assert ipamd.server.open_connections <= 8
                closed = 0
                for sock in silent:
                    with contextlib.suppress(BlockingIOError):  # still open: nothing to read
                        closed += sock.recv(1) == b""
                assert closed >= 50 - 8, closed  # the oldest went first; never more than the limit open
            finally:
                for sock in silent:
                    sock.close()

    run(main())


def test_a_burst_while_ipamd_is_stalled_waits_in_the_listen_queue() -> None:
    """An outside tester's finding: 400 plugins connecting at once to a stalled ipamd (its loop blocked, as
    under SIGSTOP) all get in the listen queue (asyncio's default backlog of 100 refused 300 of them with
    EAGAIN), and are all answered once it runs again."""

    async def main() -> None:
        async with running_ipamd() as ipamd:
            clients = [socket.socket(socket.AF_UNIX) for _ in range(400)]
            try:
                refused = 0
                for sock in clients:  # the loop does not run during this: ipamd accepts nothing
                    sock.setblocking(False)
                    try:
                        sock.connect(ipamd.socket_path)
                        sock.send(PING)
                    except BlockingIOError as exc:
                        assert exc.errno == errno.EAGAIN
                        refused += 1
                assert refused == 0
                loop = asyncio.get_running_loop()
                answers = await asyncio.wait_for(
                    asyncio.gather(*(loop.sock_recv(sock, 1000) for sock in clients)), 30)
                assert all(decode_response(a.rstrip(b"\n")).ok for a in answers)
            finally:
                for sock in clients:
                    sock.close()

    run(main())


def test_plugins_retry_a_full_listen_queue_within_their_deadline() -> None:
    """The other half of that finding: with the queue full (a short backlog here) the client's connect gets
    EAGAIN at once; it retries until ipamd takes it, so 100 DELs against a stalled ipamd all succeed."""

    async def main() -> None:
        async with running_ipamd(settings=ServerSettings(backlog=4)) as ipamd:
            results: list[bool] = []
            delete = Request(op=Op.DEL, network="vpccni", container_id="gone", ifname="eth0", netns=NETNS)

            def plugin() -> None:
                results.append(call(ipamd.socket_path, delete, timeout_s=20).ok)

            threads = [threading.Thread(target=plugin) for _ in range(100)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # ipamd stalled: its loop is blocked here while the plugins connect
            for thread in threads:
                await asyncio.to_thread(thread.join, 30)
            assert results == [True] * 100

    run(main())
