"""A real ipamd server with a fake node, for ``vpccni bench rpc`` (which may not import ipamd).

``python -m ipamd.app.benchserve --socket S --state F --addresses N [--cooldown SECONDS]``

Everything on the request path is the production code: the socket server, the handler, the datastore,
the checkpoint with group commit and fsync. What is fake is the node: one primary ENI holding N secondary
addresses (no cloud), and plumbing is :class:`~ipamd.dataplane.pod.NullPodNetwork`. The cooldown defaults to 0
so a short pool can sustain thousands of ADD+DEL pairs per second.

Start-up follows the order ipamd main will use: load checkpoint -> recover -> listen -> commit recovery ->
replay release records -> ready. Prints one JSON line ``{"event": "ready", ...}`` on stdout when
serving, and ``{"event": "stopped", "commits": ..., "writes": ...}`` after SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import sys
import time

from ipamd.dataplane.pod import NullPodNetwork
from ipamd.serve.handler import RequestHandler
from ipamd.serve.replay import replay_release_records
from ipamd.serve.server import IpamServer, ServerSettings
from ipamd.state.checkpoint import GroupCommitter, load_checkpoint, snapshot_of
from ipamd.state.datastore import Datastore
from ipamd.state.hooks import InMemoryServerMetrics
from ipamd.state.recovery import DescribedEni, recover
from vpccni.console import OneLineParser
from vpccni.errors import VpccniError
from vpccni.wire.protocol import spool_dir_for

BENCH_SUBNET = ipaddress.IPv4Network("10.200.0.0/16")
BENCH_ENI = "eni-bench00000000000"
MAX_ADDRESSES = 60000


def bench_eni(addresses: int) -> DescribedEni:
    first = int(BENCH_SUBNET.network_address) + 256  # clear of the subnet's reserved addresses
    cidrs = tuple(f"{ipaddress.IPv4Address(first + i)}/32" for i in range(addresses))
    return DescribedEni(BENCH_ENI, 0, True, str(BENCH_SUBNET), cidrs)


def _emit(event: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


async def serve(socket_path: str, state_path: str, addresses: int, cooldown_s: float) -> None:
    clock = time.time
    datastore = Datastore(cooldown_s=cooldown_s, clock=clock)
    report = recover(datastore, load_checkpoint(state_path), [bench_eni(addresses)])
    committer = GroupCommitter(state_path, lambda: snapshot_of(datastore, clock()), clock)
    metrics = InMemoryServerMetrics()
    handler = RequestHandler(datastore, committer, NullPodNetwork(), metrics=metrics)
    server = IpamServer(handler, ServerSettings(socket_path=socket_path))
    await server.start()
    try:
        if report.needs_commit:
            await committer.commit()
        await replay_release_records(spool_dir_for(socket_path), handler)
        handler.mark_ready()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        _emit({"event": "ready", "pid": os.getpid(), "socket": socket_path, "addresses": addresses,
               "recovered": len(report.kept)})
        await stop.wait()
    finally:
        await server.close()
        await committer.aclose()
    _emit({"event": "stopped", "commits": committer.commits, "writes": committer.writes,
           "adds": sum(metrics.add_requests.values()), "dels": sum(metrics.del_requests.values())})


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m ipamd.app.benchserve", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True, help="Unix socket path to serve on")
    parser.add_argument("--state", required=True, help="checkpoint file (created if missing)")
    parser.add_argument("--addresses", type=int, default=256, help=f"pool size, 1-{MAX_ADDRESSES}")
    parser.add_argument("--cooldown", type=float, default=0.0, help="IP_COOLDOWN_PERIOD, seconds")
    args = parser.parse_args(argv)
    if not 1 <= args.addresses <= MAX_ADDRESSES:
        parser.error(f"--addresses {args.addresses}: expected 1-{MAX_ADDRESSES}")
    if args.cooldown < 0:
        parser.error(f"--cooldown {args.cooldown}: expected >= 0 seconds")
    try:
        asyncio.run(serve(args.socket, args.state, args.addresses, args.cooldown))
    except VpccniError as exc:
        sys.stderr.write(f"benchserve: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
