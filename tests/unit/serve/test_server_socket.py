"""The socket path: permissions, stale-socket replacement, refusal next to a live ipamd or a non-socket,
removal on close."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator

import pytest

from ipamd.dataplane.pod import NullPodNetwork
from ipamd.serve.handler import RequestHandler
from ipamd.serve.server import IpamServer, ServerSettings, ServerStartError
from ipamd.state.checkpoint import CheckpointData, GroupCommitter
from ipamd.state.datastore import Datastore
from tests.unit.serve.server_harness import call, running_ipamd
from vpccni.wire.protocol import Op, Request


@pytest.fixture
def workdir() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="vpccni-sock-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def server_at(socket_path: str) -> IpamServer:
    ds = Datastore()
    committer = GroupCommitter(os.path.join(os.path.dirname(socket_path), "unused.json"),
                               CheckpointData, lambda: 0.0)
    handler = RequestHandler(ds, committer, NullPodNetwork())
    return IpamServer(handler, ServerSettings(socket_path=socket_path))


def test_socket_is_0600_in_a_0700_directory_and_removed_on_close() -> None:
    async def main() -> None:
        async with running_ipamd() as ipamd:
            st = os.stat(ipamd.socket_path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
            assert stat.S_IMODE(os.stat(os.path.dirname(ipamd.socket_path)).st_mode) == 0o700
            path = ipamd.socket_path
            await ipamd.server.close()
            assert not os.path.exists(path)
    asyncio.run(main())


def test_stale_socket_is_replaced(workdir: str) -> None:
    path = os.path.join(workdir, "ipamd.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # a socket file nobody listens on: what a killed ipamd leaves
    dead.close()

    async def main() -> None:
        server = server_at(path)
        await server.start()
        try:
            assert (await call(path, Request(op=Op.PING))).ok
        finally:
            await server.close()
    asyncio.run(main())


def test_refuses_to_start_next_to_a_live_ipamd() -> None:
    async def main() -> None:
        async with running_ipamd() as ipamd:
            second = server_at(ipamd.socket_path)
            with pytest.raises(ServerStartError, match="another ipamd"):
                await second.start()
            assert (await ipamd.call(Request(op=Op.PING))).ok  # the live one is untouched
    asyncio.run(main())


def test_refuses_to_start_while_another_process_holds_the_lock(workdir: str) -> None:
    path = os.path.join(workdir, "ipamd.sock")

    async def main() -> None:
        first = server_at(path)
        await first.start()
        try:
            os.unlink(path)  # even with the socket gone, the instance lock still tells
            with pytest.raises(ServerStartError, match="holds"):
                await server_at(path).start()
        finally:
            await first.close()
        second = server_at(path)  # the lock is released on close
        await second.start()
        await second.close()
    asyncio.run(main())


def test_refuses_to_replace_a_file_that_is_not_a_socket(workdir: str) -> None:
    path = os.path.join(workdir, "ipamd.sock")
    with open(path, "w") as f:
        f.write("precious")

    async def main() -> None:
        with pytest.raises(ServerStartError, match="not a socket"):
            await server_at(path).start()
    asyncio.run(main())
    with open(path) as f:
        assert f.read() == "precious"
