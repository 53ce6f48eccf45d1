"""The pod's namespace comes as a descriptor with the request, over the real socket: what ipamd accepts, what
it refuses (before anything changes, whatever the verb), the version-1 requests of an older plugin, and that
every descriptor received is closed, whatever happened to its request or its connection."""

from __future__ import annotations

import array
import asyncio
import os
import socket
from collections.abc import Iterator

import pytest

from ipamd.dataplane.netns import NetnsGuard
from tests.unit.serve.server_harness import NETNS, Ipamd, RecordingPodNetwork, add, delete, running_ipamd
from vpccni.testing.scratch_netns import scratch_netns
from vpccni.wire.protocol import ErrorKind, Op, Request, Response, decode_response, encode_request


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def opened() -> Iterator[dict[str, int]]:
    """Descriptors of things that are not a pod's network namespace, by name."""
    fds: dict[str, int] = {}
    try:
        for name, path in (("own", "/proc/self/ns/net"), ("uts", "/proc/self/ns/uts"),
                           ("file", "/etc/hostname"), ("directory", "/")):
            fds[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        yield fds
    finally:
        for fd in fds.values():
            os.close(fd)


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def quiet_fds(ipamd: Ipamd) -> set[str]:
    """This process's descriptors once every connection has ended (a client that left is seen at the
    server's next read)."""
    for _ in range(200):
        if ipamd.server.open_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert ipamd.server.open_connections == 0
    return open_fds()


async def warm(ipamd: Ipamd) -> set[str]:
    """The descriptors an idle server holds once it has committed (the checkpoint keeps its directory)."""
    assert (await ipamd.call(add("warm"))).ok and (await ipamd.call(delete("warm"))).ok
    return await quiet_fds(ipamd)


def check(cid: str = "c1") -> Request:
    return Request(op=Op.CHECK, network="vpccni", container_id=cid, ifname="eth0", netns=NETNS)


async def send_raw(path: str, data: bytes, fds: list[int]) -> Response:
    """One line and any number of descriptors in one sendmsg, as a client that breaks the rules would."""

    def exchange() -> bytes:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            sock.sendmsg([data], rights)
            return sock.makefile("rb").readline()

    return decode_response(await asyncio.to_thread(exchange))


def refused(resp: Response, kind: ErrorKind, words: str) -> bool:
    return resp.error is not None and resp.error.kind is kind and words in resp.error.message


def test_add_and_check_take_the_namespace_passed_and_refuse_anything_else(opened: dict[str, int]) -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(podnet=podnet) as ipamd:
            cases = [
                (None, "no network namespace came with the ADD"),
                (opened["file"], "is not a namespace (not on nsfs)"),
                (opened["directory"], "is not a namespace (not on nsfs)"),
                (opened["uts"], "is a uts namespace, not a network namespace"),
                (opened["own"], "is ipamd's own network namespace"),
            ]
            for fd, words in cases:
                for req in (add("c1"), check("c1")):
                    resp = await ipamd.call(req, fd)
                    assert refused(resp, ErrorKind.INVALID_NETNS, words.replace("ADD", str(req.op))), resp
                    assert NETNS in resp.error.message or fd is None, resp  # type: ignore[union-attr]
            assert ipamd.datastore.allocations() == [] and podnet.events == []
            assert (await ipamd.call(add("c1"))).ok
            assert (await ipamd.call(check("c1"))).ok
            assert podnet.namespaces == [NETNS, NETNS]  # plumbed and checked through what was passed
            assert ipamd.datastore.allocations()[0].netns == NETNS
    run(main())


def test_a_node_namespace_ipamd_plumbs_the_host_side_in_is_never_a_pods() -> None:
    async def main() -> None:
        with scratch_netns() as node:
            node_path = f"/proc/{os.getpid()}/fd/{node}"  # how a test names a namespace it holds
            async with running_ipamd(netns_guard=NetnsGuard(node_namespaces=[node_path])) as ipamd:
                resp = await ipamd.call(add("c1"), node)
                assert refused(resp, ErrorKind.INVALID_NETNS, f"is the node namespace {node_path}"), resp
                assert (await ipamd.call(add("c1"))).ok  # another namespace is fine
    run(main())


def test_del_tears_down_through_the_namespace_or_host_side_only_and_refuses_a_bad_one(
    opened: dict[str, int],
) -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(podnet=podnet) as ipamd:
            for cid in ("a", "b", "c"):
                assert (await ipamd.call(add(cid))).ok
            for name in ("own", "uts", "file"):
                resp = await ipamd.call(delete("a"), opened[name])
                assert refused(resp, ErrorKind.INVALID_NETNS, "netns"), resp
            assert ("teardown", "a") not in podnet.events  # refused before anything was touched
            assert len(ipamd.on_disk().allocations) == 3
            assert (await ipamd.call(delete("a", netns=NETNS), ipamd.pod_netns_fd)).ok
            assert (await ipamd.call(delete("b"))).ok  # the namespace is gone: the host side only
            assert podnet.namespaces == [NETNS] * 3 + [NETNS, None]  # 3 setups, then the 2 teardowns
            gc = Request(op=Op.GC, network="vpccni")
            assert refused(await ipamd.call(gc, ipamd.pod_netns_fd), ErrorKind.BAD_REQUEST, "a GC takes no")
            assert [a.key.container_id for a in ipamd.on_disk().allocations] == ["c"]
    run(main())


def test_a_version_1_plugin_is_told_to_upgrade_for_add_and_check_and_served_otherwise() -> None:
    """An older plugin (protocol 1: the namespace by path, no descriptor) next to this ipamd during a
    rolling upgrade: its requests answered in version 1, which it reads; no hang, no plumbing by path."""

    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(podnet=podnet) as ipamd:
            assert (await ipamd.call(add("c1"))).ok
            for req in (add("c2", netns="/proc/self/ns/net"), check("c1")):
                resp = await send_raw(ipamd.socket_path, encode_request(req._replace(v=1)), [])
                assert resp.v == 1, resp
                assert refused(resp, ErrorKind.UNSUPPORTED_VERSION, "upgrade the vpccni CNI"), resp
                assert "names the pod's network namespace by path" in resp.error.message  # type: ignore[union-attr]
            for req in (Request(op=Op.STATUS), Request(op=Op.PING), delete("c1", netns="/proc/self/ns/net")):
                resp = await send_raw(ipamd.socket_path, encode_request(req._replace(v=1)), [])
                assert resp.v == 1 and resp.ok, resp
            assert ipamd.datastore.allocations() == []
            assert podnet.namespaces == [NETNS, None]  # the v1 DEL: host side only, its path never used
            resp = await send_raw(ipamd.socket_path, b'{"v": 3, "op": "PING"}\n', [])
            assert refused(resp, ErrorKind.UNSUPPORTED_VERSION, "version 3"), resp
    run(main())


def test_descriptors_beyond_one_per_request_are_refused_and_closed(opened: dict[str, int]) -> None:
    async def main() -> None:
        async with running_ipamd() as ipamd:
            before = await warm(ipamd)
            pod = ipamd.pod_netns_fd
            resp = await send_raw(ipamd.socket_path, encode_request(add("c1")), [pod, pod])
            assert refused(resp, ErrorKind.BAD_REQUEST, "more than one descriptor"), resp
            resp = await send_raw(ipamd.socket_path, encode_request(add("c1")), [pod] * 6)
            assert refused(resp, ErrorKind.BAD_REQUEST, "dropped (more than 4 at once"), resp
            assert ipamd.datastore.allocations() == []
            assert await quiet_fds(ipamd) == before
    run(main())


async def _load(ipamd: Ipamd, n: int, opened: dict[str, int]) -> None:
    """Requests of every outcome, and clients that leave half-way with a descriptor sent."""
    pod = ipamd.pod_netns_fd
    line = encode_request(add(f"gone{n}"))
    if n % 5 == 0:
        assert (await ipamd.call(add(f"p{n}"))).ok
        assert (await ipamd.call(delete(f"p{n}"), pod)).ok
    elif n % 5 == 1:
        assert not (await ipamd.call(add(f"p{n}"), opened["own"])).ok
    elif n % 5 == 2:
        assert not (await send_raw(ipamd.socket_path, b"not json\n", [pod])).ok
    else:  # mid-line (n % 5 == 3) or with the line complete but before the answer (4): then gone
        cut = len(line) // 2 if n % 5 == 3 else len(line)

        def leave() -> None:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(ipamd.socket_path)
                sock.sendmsg([line[:cut]], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [pod]))])

        await asyncio.to_thread(leave)


def test_no_descriptor_outlives_its_request_under_load(opened: dict[str, int]) -> None:
    async def main() -> None:
        async with running_ipamd(addresses=64) as ipamd:
            before = await warm(ipamd)
            for burst in range(4):
                await asyncio.gather(*(_load(ipamd, 50 * burst + n, opened) for n in range(50)))
            after = await quiet_fds(ipamd)
            assert after == before, [os.readlink(f"/proc/self/fd/{fd}") for fd in after - before]
    run(main())
