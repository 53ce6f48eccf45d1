"""ipamd's operations over a real Unix socket: ADD/DEL/CHECK/GC/STATUS/PING, durability before reply,
errors that name what is wrong, rollback on plumbing failure, and why-no-IP reasons."""

from __future__ import annotations

import array
import asyncio
import os
import socket

from ipamd.state.datastore import AllocationKey
from tests.unit.serve.server_harness import NETNS, RecordingPodNetwork, add, delete, running_ipamd
from vpccni.errors import InterfaceExists
from vpccni.wire.protocol import (
    MAX_LINE_BYTES,
    CniAttachment,
    ErrorKind,
    NoIpReason,
    Op,
    Request,
    decode_response,
    encode_request,
)


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_add_replies_an_allocation_that_is_already_durable() -> None:
    async def main() -> None:
        async with running_ipamd() as ipamd:
            resp = await ipamd.call(add("c1"))
            assert resp.ok and resp.allocation is not None
            alloc = resp.allocation
            assert (alloc.ipv4, alloc.prefix_len, alloc.gateway) == ("10.1.0.10", 32, "169.254.1.1")
            assert (alloc.eni_id, alloc.device_number, alloc.route_table) == ("eni-test", 1, 2)
            assert alloc.container_ifname == "eth0" and alloc.netns == NETNS and alloc.mtu == 9001
            on_disk = ipamd.on_disk().allocations
            expected_key = AllocationKey("vpccni", "c1", "eth0")
            assert [(a.key, a.address) for a in on_disk] == [(expected_key, alloc.ipv4)]
            again = await ipamd.call(add("c1"))
            assert again.allocation == alloc  # idempotent per key
            assert ipamd.metrics.add_requests["ok"] == 2
    run(main())


def test_del_releases_durably_and_unknown_or_repeated_del_succeeds() -> None:
    async def main() -> None:
        async with running_ipamd(cooldown_s=30) as ipamd:
            alloc = (await ipamd.call(add("c1"))).allocation
            assert alloc is not None
            resp = await ipamd.call(delete("c1", netns="/gone/netns"))
            assert resp.ok
            data = ipamd.on_disk()
            assert data.allocations == () and [c.address for c in data.cooldown] == [alloc.ipv4]
            assert (await ipamd.call(delete("c1"))).ok
            assert (await ipamd.call(delete("never-added"))).ok
            assert ipamd.metrics.del_requests["PodDeleted"] == 3
            nxt = (await ipamd.call(add("c2"))).allocation
            assert nxt is not None and nxt.ipv4 != alloc.ipv4  # cooling, not reused
    run(main())


def test_check_reports_unknown_key_and_plumbing_problems() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(podnet=podnet) as ipamd:
            check = Request(op=Op.CHECK, network="vpccni", container_id="c1", ifname="eth0", netns=NETNS)
            resp = await ipamd.call(check)
            assert resp.error is not None and resp.error.kind is ErrorKind.CHECK_FAILED
            assert "no address" in resp.error.message and "'c1'" in resp.error.message
            await ipamd.call(add("c1"))
            assert (await ipamd.call(check)).ok
            podnet.problems = ["route 10.1.0.10/32 missing", "rule 512 missing"]
            resp = await ipamd.call(check)
            assert resp.error is not None and resp.error.kind is ErrorKind.CHECK_FAILED
            assert resp.error.message == "route 10.1.0.10/32 missing; rule 512 missing"
    run(main())


def test_gc_releases_only_invalid_attachments_of_its_network() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(addresses=6, podnet=podnet) as ipamd:
            for cid in ("keep", "stale1", "stale2"):
                assert (await ipamd.call(add(cid))).ok
            assert (await ipamd.call(add("keep", ifname="net1"))).ok  # same container, other interface
            assert (await ipamd.call(add("other-net", network="second"))).ok
            gc = Request(op=Op.GC, network="vpccni",
                         valid_attachments=(CniAttachment("keep", "eth0"), CniAttachment("keep", "net1")))
            resp = await ipamd.call(gc)
            assert resp.ok and resp.released == 2
            left = sorted(tuple(a.key) for a in ipamd.on_disk().allocations)
            assert left == [("second", "other-net", "eth0"), ("vpccni", "keep", "eth0"),
                            ("vpccni", "keep", "net1")]
            assert sorted(c for e, c in podnet.events if e == "teardown") == ["stale1", "stale2"]
            assert (await ipamd.call(gc)).released == 0
    run(main())


def test_status_and_ping() -> None:
    async def main() -> None:
        async with running_ipamd(addresses=1, ready=False) as ipamd:
            ping = await ipamd.call(Request(op=Op.PING))
            assert ping.ok and ping.status == {"ready": False, "pid": os.getpid()}
            status = await ipamd.call(Request(op=Op.STATUS))
            assert status.error is not None and status.error.kind is ErrorKind.NOT_READY
            assert status.error.reason is NoIpReason.STARTING
            resp = await ipamd.call(add("c1"))
            assert resp.error is not None and resp.error.kind is ErrorKind.NOT_READY
            assert ipamd.datastore.allocations() == []
            ipamd.handler.mark_ready()
            status = await ipamd.call(Request(op=Op.STATUS))
            assert status.ok and status.status == {"free": 1, "assigned": 0, "cooling": 0, "total": 1}
            await ipamd.call(add("c1"))
            status = await ipamd.call(Request(op=Op.STATUS))
            assert status.error is not None and status.error.kind is ErrorKind.NO_IP
            assert "1 assigned" in status.error.message
    run(main())


class SubnetFull:
    def why_no_ip(self) -> tuple[NoIpReason, str]:
        return NoIpReason.SUBNET_FULL, "subnet-1 has no free address (InsufficientFreeAddressesInSubnet)"


def test_no_ip_carries_the_reason_from_the_pool_status() -> None:
    async def main() -> None:
        async with running_ipamd(addresses=1, pool_status=SubnetFull()) as ipamd:
            assert (await ipamd.call(add("c1"))).ok
            resp = await ipamd.call(add("c2"))
            assert resp.error is not None and resp.error.kind is ErrorKind.NO_IP
            assert resp.error.reason is NoIpReason.SUBNET_FULL and "subnet-1" in resp.error.message
            assert ipamd.metrics.no_ips[NoIpReason.SUBNET_FULL] == 1
            assert ipamd.metrics.add_requests["no_ip"] == 1
    run(main())


def test_bad_requests_are_refused_with_a_message_naming_the_problem() -> None:
    """(The namespace's checks: test_server_netns.)"""

    async def main() -> None:
        async with running_ipamd() as ipamd:
            cases = [
                (add("bad/id"), ErrorKind.BAD_REQUEST, "invalid container ID"),
                (add("c1", ifname="x" * 16), ErrorKind.BAD_REQUEST, "invalid interface name"),
                (add("c1", network="bad name"), ErrorKind.BAD_REQUEST, "invalid network name"),
                (Request(op=Op.PING, v=3), ErrorKind.UNSUPPORTED_VERSION, "version 3"),
            ]
            for req, kind, words in cases:
                resp = await ipamd.call(req)
                assert resp.error is not None, req
                assert resp.error.kind is kind and words in resp.error.message, (req, resp)
            assert ipamd.datastore.allocations() == []

            reader, writer = await asyncio.open_unix_connection(ipamd.socket_path)
            writer.write(b'{"v": 1, "op": "FLY"}\n')
            resp = decode_response(await reader.readline())
            assert resp.error is not None and resp.error.kind is ErrorKind.BAD_REQUEST
            assert "field 'op'" in resp.error.message
            writer.write(b"not json\n")
            resp = decode_response(await reader.readline())
            assert resp.error is not None and resp.error.kind is ErrorKind.BAD_REQUEST
            writer.write(b"x" * (MAX_LINE_BYTES + 10) + b"\n")
            resp = decode_response(await reader.readline())
            assert resp.error is not None and "longer than" in resp.error.message
            assert await reader.readline() == b""  # framing lost: the server closed the connection
            writer.close()
    run(main())


def test_several_requests_on_one_connection_are_answered_in_order() -> None:
    """Sent back to back before any answer is read, each ADD with its namespace in its own sendmsg."""

    async def main() -> None:
        async with running_ipamd(addresses=3) as ipamd:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(ipamd.socket_path)  # the listen queue takes it; the loop runs meanwhile
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [ipamd.pod_netns_fd]))]
                for req in (add("a"), add("b"), delete("a"), add("c")):
                    assert sock.sendmsg([encode_request(req)], rights if req.op is Op.ADD else [])
                sock.setblocking(False)
                received = b""
                while received.count(b"\n") < 4:
                    received += await asyncio.get_running_loop().sock_recv(sock, 65536)
            answers = [decode_response(line) for line in received.splitlines()]
            assert [a.ok for a in answers] == [True] * 4, answers
            assert answers[0].allocation and answers[1].allocation and answers[3].allocation
            assert answers[0].allocation.ipv4 != answers[1].allocation.ipv4
    run(main())


def test_plumbing_failure_rolls_back_durably() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork(fail_setup=OSError("veth create failed: File exists"))
        async with running_ipamd(addresses=1, cooldown_s=30, podnet=podnet) as ipamd:
            resp = await ipamd.call(add("c1"))
            assert resp.error is not None and resp.error.kind is ErrorKind.PLUMBING
            assert "File exists" in resp.error.message and "10.1.0.10" in resp.error.message
            assert ("teardown", "c1") in podnet.events
            assert ipamd.datastore.allocations() == [] and ipamd.on_disk().allocations == ()
            podnet.fail_setup = None
            again = await ipamd.call(add("c1"))  # no cooldown after a rollback: the pod never used it
            assert again.ok and again.allocation is not None and again.allocation.ipv4 == "10.1.0.10"
            assert again.allocation.host_ifname == "enic1"
    run(main())


def test_an_interface_name_taken_in_the_pod_is_the_runtimes_error_and_rolls_back() -> None:
    async def main() -> None:
        taken = InterfaceExists("create veth enic1 / eth0", "eth0 already exists in pod namespace /x")
        podnet = RecordingPodNetwork(fail_setup=taken)
        async with running_ipamd(addresses=1, cooldown_s=30, podnet=podnet) as ipamd:
            resp = await ipamd.call(add("c1"))
            assert resp.error is not None and resp.error.kind is ErrorKind.IFNAME_EXISTS
            assert "eth0 already exists" in resp.error.message
            assert ipamd.datastore.allocations() == [] and ipamd.on_disk().allocations == ()
            assert ipamd.datastore.free_count() == 1, "the address is free again at once"
    run(main())


def test_teardown_failure_keeps_the_address_and_fails_the_del() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork()
        async with running_ipamd(podnet=podnet) as ipamd:
            await ipamd.call(add("c1"))
            podnet.fail_teardown = OSError("rule delete: Operation not permitted")
            resp = await ipamd.call(delete("c1"))
            assert resp.error is not None and resp.error.kind is ErrorKind.PLUMBING
            assert "address kept" in resp.error.message
            assert [a.key.container_id for a in ipamd.on_disk().allocations] == ["c1"]
            podnet.fail_teardown = None
            assert (await ipamd.call(delete("c1"))).ok
            assert ipamd.on_disk().allocations == ()
    run(main())


class CountingDemand:
    """The pool loop's wake-up as the handler sees it: counts the pokes."""

    def __init__(self) -> None:
        self.pokes = 0

    def poke(self) -> None:
        self.pokes += 1


def test_the_handler_wakes_the_pool_when_demand_changes() -> None:
    """An ADD that takes an address, one that finds none and a DEL that gives one back each wake the pool
    loop at once (the handler signals it; the metrics adapter only observes)."""

    async def main() -> None:
        demand = CountingDemand()
        async with running_ipamd(addresses=1, demand=demand) as ipamd:
            assert (await ipamd.call(add("c1"))).ok
            assert demand.pokes == 1
            assert not (await ipamd.call(add("c2"))).ok  # the only address is taken
            assert demand.pokes == 2
            assert (await ipamd.call(delete("c1"))).ok
            assert demand.pokes == 3
            await ipamd.call(Request(op=Op.STATUS))
            assert demand.pokes == 3  # a STATUS changes no demand
    run(main())
