"""kill -9 of a real ipamd server process in the middle of ADD/DEL traffic, at seeded points, then restart:
every answered ADD still holds its address, every answered DEL stays released, no address is held
twice, and the restarted server hands the same address back to a repeated ADD (durable before reply)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile

from ipamd.state.checkpoint import load_checkpoint
from tests.unit.serve.server_harness import add, call, delete
from vpccni.testing.scratch_netns import scratch_netns
from vpccni.wire.client import AsyncConnection, IpamdUnreachable
from vpccni.wire.protocol import ErrorKind, Op, Request, Response

ROUNDS = 20
KEYS = [f"pod{n}" for n in range(12)]
ADDRESSES = 8


def start_server(workdir: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipamd.app.benchserve", "--socket", os.path.join(workdir, "ipamd.sock"),
         "--state", os.path.join(workdir, "ipam.json"), "--addresses", str(ADDRESSES)],
        stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert '"ready"' in line, f"server did not start: {line!r}"
    return proc


class Model:
    """What the clients were told: key -> address for answered ADDs; keys with an unanswered request
    are uncertain until a later answer settles them."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}
        self.uncertain: set[str] = set()


async def client(socket_path: str, rng: random.Random, model: Model, mine: list[str], netns: int) -> None:
    try:
        conn = await AsyncConnection.open(socket_path)
    except IpamdUnreachable:
        return
    try:
        while True:
            cid = rng.choice(mine)
            req = add(cid) if rng.random() < 0.6 else delete(cid)
            model.uncertain.add(cid)
            resp = await conn.request(req, netns if req.op is Op.ADD else None)
            model.uncertain.discard(cid)
            apply(model, cid, req, resp)
    except (IpamdUnreachable, OSError):
        return  # killed: cid stays uncertain
    finally:
        conn.close()


def apply(model: Model, cid: str, req: Request, resp: Response) -> None:
    if req.op == "ADD" and resp.allocation is not None:
        previous = model.held.get(cid)
        assert previous in (None, resp.allocation.ipv4), f"{cid} moved from {previous}"
        model.held[cid] = resp.allocation.ipv4
    elif req.op == "ADD":
        assert resp.error is not None and resp.error.kind is ErrorKind.NO_IP, resp
    else:
        assert resp.ok, resp
        model.held.pop(cid, None)


async def traffic_until_killed(socket_path: str, proc: subprocess.Popen[str], rng: random.Random,
                               model: Model, netns: int) -> None:
    loop = asyncio.get_running_loop()
    loop.call_later(rng.uniform(0.01, 0.15), os.kill, proc.pid, signal.SIGKILL)
    shares = [KEYS[i::4] for i in range(4)]  # each key belongs to one client: per-key order is known
    await asyncio.gather(*(client(socket_path, random.Random(rng.random()), model, s, netns) for s in shares))


async def settle(socket_path: str, model: Model, netns: int) -> None:
    """After a restart: a repeated ADD of each answered key gets the same address; uncertain keys are
    deleted so the next round starts from known state."""
    for cid, address in model.held.items():
        if cid in model.uncertain:
            continue
        resp = await call(socket_path, add(cid), netns)
        assert resp.allocation is not None and resp.allocation.ipv4 == address, (cid, address, resp)
    for cid in sorted(model.uncertain):
        assert (await call(socket_path, delete(cid))).ok
        model.held.pop(cid, None)
    model.uncertain.clear()


def test_kill_9_mid_traffic_loses_no_answered_state() -> None:
    with scratch_netns() as netns:
        kill_9_rounds(netns)


def kill_9_rounds(netns: int) -> None:
    workdir = tempfile.mkdtemp(prefix="vpccni-crash-")
    socket_path = os.path.join(workdir, "ipamd.sock")
    model = Model()
    proc = start_server(workdir)
    try:
        for seed in range(ROUNDS):
            asyncio.run(traffic_until_killed(socket_path, proc, random.Random(seed), model, netns))
            proc.wait(10)
            assert proc.stdout is not None
            proc.stdout.close()
            on_disk = load_checkpoint(os.path.join(workdir, "ipam.json"))
            held_on_disk = {a.key.container_id: a.address for a in on_disk.allocations} if on_disk else {}
            assert len(set(held_on_disk.values())) == len(held_on_disk), f"round {seed}: address held twice"
            for cid in KEYS:
                if cid in model.uncertain:
                    continue
                assert held_on_disk.get(cid) == model.held.get(cid), f"round {seed}: {cid} lost or leaked"
            proc = start_server(workdir)
            asyncio.run(settle(socket_path, model, netns))
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(workdir, ignore_errors=True)
