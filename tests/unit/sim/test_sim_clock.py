"""The virtual-time loop and fibers: time jumps to the next timer, blocking code sleeps in virtual time,
one fiber runs at a time, and a world that can never move again says so instead of hanging."""

from __future__ import annotations

import asyncio
import time

import pytest

from vpccni.sim import fibers, vloop
from vpccni.sim.bridge import environ_for


def test_an_hour_of_sleeps_passes_at_once_and_in_order() -> None:
    seen: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        seen.append((name, asyncio.get_running_loop().time()))

    async def main() -> float:
        await asyncio.gather(sleeper("hour", 3600), sleeper("minute", 60), sleeper("now", 0))
        return asyncio.get_running_loop().time()

    started = time.monotonic()
    assert vloop.run(main()) == 3600
    assert seen == [("now", 0), ("minute", 60), ("hour", 3600)]
    assert time.monotonic() - started < 30, "virtual time: nobody waited an hour"


def test_a_world_where_every_task_waits_forever_is_a_deadlock() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(vloop.Deadlock):
        vloop.run(main())


def test_blocking_code_sleeps_in_virtual_time_while_others_run() -> None:
    pool = fibers.Fibers()
    order: list[str] = []

    loops: list[asyncio.AbstractEventLoop] = []

    def blocking(name: str, naps: list[float]) -> str:
        for nap in naps:
            order.append(f"{name}@{loops[0].time():g}")  # the loop is parked while a fiber runs
            fibers.sleep(nap)
        return name

    async def main() -> list[str]:
        loops.append(asyncio.get_running_loop())
        a, b = pool.call(blocking, "a", [10, 10]), pool.call(blocking, "b", [5, 20])
        return list(await asyncio.gather(a, b))

    assert vloop.run(main()) == ["a", "b"]
    assert order == ["a@0", "b@0", "b@5", "a@10"]
    assert pool.threads == 2 and pool.sleeps == 4


def test_an_exception_in_a_fiber_reaches_the_awaiting_task_and_the_fiber_is_reused() -> None:
    pool = fibers.Fibers()

    def fails() -> None:
        fibers.sleep(1)
        raise KeyError("boom")

    async def main() -> int:
        with pytest.raises(KeyError):
            await pool.call(fails)
        return await pool.call(lambda: 7)

    assert vloop.run(main()) == 7 and pool.threads == 1


def test_sleeping_outside_a_fiber_is_an_error_not_a_stopped_world() -> None:
    with pytest.raises(RuntimeError, match="outside a fiber"):
        fibers.sleep(1)


def test_the_bridge_builds_a_wsgi_environ_from_a_request() -> None:
    environ = environ_for("POST", "http://ec2.sim.invalid/", [("Content-Type", "application/x-www-form"),
                                                              ("X-Amz-Date", b"20240101T000000Z")],
                          b"Action=DescribeSubnets")
    assert environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"] == "/"
    assert environ["CONTENT_TYPE"] == "application/x-www-form" and environ["CONTENT_LENGTH"] == "22"
    assert environ["HTTP_X_AMZ_DATE"] == "20240101T000000Z" and environ["SERVER_PORT"] == "80"
    assert environ["wsgi.input"].read() == b"Action=DescribeSubnets"
