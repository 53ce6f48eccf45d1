"""Concurrency over a real socket: no address handed out twice under concurrent clients, ADD/DEL for one
key never interleave, GC is exclusive of ADD/DEL, and an expired deadline changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ipamd.state.datastore import AllocationKey
from tests.unit.serve.server_harness import Ipamd, RecordingPodNetwork, add, delete, running_ipamd
from vpccni.wire.protocol import ErrorKind, Op, Request, Response


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.002)
    assert condition(), what


def key(cid: str) -> AllocationKey:
    return AllocationKey("vpccni", cid, "eth0")


def test_concurrent_clients_never_share_an_address() -> None:
    async def main() -> None:
        async with running_ipamd(addresses=32) as ipamd:
            first = await asyncio.gather(*(ipamd.call(add(f"p{n}")) for n in range(40)))
            got = [r.allocation.ipv4 for r in first if r.allocation]
            assert len(got) == 32 and len(set(got)) == 32
            assert sum(1 for r in first if r.error and r.error.kind is ErrorKind.NO_IP) == 8

            async def churn(n: int) -> None:
                for round_ in range(5):
                    await ipamd.call(delete(f"p{n}" if round_ == 0 else f"q{n}-{round_ - 1}"))
                    await ipamd.call(add(f"q{n}-{round_}"))

            await asyncio.gather(*(churn(n) for n in range(32)))
            held = ipamd.on_disk().allocations
            assert len(held) == 32 and len({a.address for a in held}) == 32
            assert {a.address for a in held} == {a.address for a in ipamd.datastore.allocations()}
    run(main())


async def _stuck_add(ipamd: Ipamd, podnet: RecordingPodNetwork, cid: str) -> asyncio.Task[Response]:
    task = asyncio.create_task(ipamd.call(add(cid)))
    await until(lambda: ("setup-start", cid) in podnet.events, "ADD reached plumbing")
    return task


def test_add_and_del_for_one_key_never_interleave() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork(gate=asyncio.Event())
        async with running_ipamd(podnet=podnet) as ipamd:
            adding = await _stuck_add(ipamd, podnet, "k")
            deleting = asyncio.create_task(ipamd.call(delete("k")))
            await until(lambda: ipamd.handler.locks.users(key("k")) == 2, "DEL waits for the key")
            assert (await ipamd.call(delete("unrelated"))).ok  # other keys are not held up
            assert ("teardown", "k") not in podnet.events
            assert podnet.gate is not None
            podnet.gate.set()
            added, deleted = await asyncio.gather(adding, deleting)
            assert added.ok and deleted.ok
            order = [e for e in podnet.events if e[1] == "k"]
            assert order == [("setup-start", "k"), ("setup-end", "k"), ("teardown", "k")]
            assert ipamd.datastore.get(key("k")) is None and ipamd.on_disk().allocations == ()
    run(main())


def test_gc_waits_for_add_in_flight_and_holds_new_ones_back() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork(gate=asyncio.Event())
        async with running_ipamd(podnet=podnet) as ipamd:
            adding = await _stuck_add(ipamd, podnet, "a")
            gc = asyncio.create_task(ipamd.call(Request(op=Op.GC, network="vpccni")))  # nothing valid
            await until(lambda: ipamd.handler.locks.exclusive_pending, "GC waits")
            late_add = asyncio.create_task(ipamd.call(add("b")))
            await asyncio.sleep(0.02)
            assert not gc.done() and ("setup-start", "b") not in podnet.events
            assert podnet.gate is not None
            podnet.gate.set()
            added, collected, late = await asyncio.gather(adding, gc, late_add)
            assert added.ok and late.ok
            assert collected.ok and collected.released == 1  # "a" (finished first), not "b" (after GC)
            assert [a.key.container_id for a in ipamd.on_disk().allocations] == ["b"]
    run(main())


def test_expired_deadline_answers_try_again_and_changes_nothing() -> None:
    async def main() -> None:
        podnet = RecordingPodNetwork(gate=asyncio.Event())
        async with running_ipamd(podnet=podnet) as ipamd:
            adding = await _stuck_add(ipamd, podnet, "k")
            hasty_del = asyncio.create_task(ipamd.call(Request(
                op=Op.DEL, network="vpccni", container_id="k", ifname="eth0", deadline_ms=20)))
            hasty_add = asyncio.create_task(ipamd.call(add("k", deadline_ms=20)))
            await until(lambda: ipamd.handler.locks.users(key("k")) == 3, "both wait for the key")
            await asyncio.sleep(0.05)  # longer than their 20 ms budget
            assert podnet.gate is not None
            podnet.gate.set()
            added, late_del, late_add = await asyncio.gather(adding, hasty_del, hasty_add)
            assert added.ok
            for late in (late_del, late_add):
                assert late.error is not None and late.error.kind is ErrorKind.TRY_AGAIN
                assert "nothing was changed" in late.error.message
            assert [a.key.container_id for a in ipamd.on_disk().allocations] == ["k"]
            assert [e for e in podnet.events if e[0] == "teardown"] == []
    run(main())
