"""The fleet scenario on real ipamd processes against the local cloud, to check the simulator against.

A small fleet (tens of nodes) of :mod:`vpccni.sim.scenario` boots as ``python -m ipamd`` processes, each
with its own IMDS, against one local EC2 endpoint over HTTP, and its pods' ADDs go over each node's socket
as the plugin sends them (retried as kubelet retries a failed sandbox). The clock is compressed
(``scale`` cluster seconds per wall second): ipamd's timers and its API budget's refill are scaled as
``bench churn`` scales them (:class:`~vpccni.benchmarks.churn_trace.TimeScale`), and so is the account's
refill. The account's buckets are also shrunk by ``share`` (nodes here / nodes of the fleet it stands
for), so that these few nodes meet the contention the whole fleet would. Building the scenario (VPC,
subnets, instances) happens with throttling off; the buckets open, full, when the ipamds start.

:func:`run_real` returns the figures :func:`vpccni.sim.fleet.run_fleet` gives for the same spec, in
cluster seconds, so the two can be compared (``tests/bench/test_fleet_validation.py``).
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from typing import Any

from vpccni.benchmarks.churn_trace import TimeScale
from vpccni.sim.scenario import CNI_TAG, FleetSpec, fleet_plan
from vpccni.testing.ipamd_process import IpamdPaths, IpamdProcess, ipamd_env
from vpccni.testing.scratch_netns import LABEL, scratch_netns
from vpccni.wire.client import IpamdUnreachable, call_async
from vpccni.wire.protocol import ErrorKind, Op, Request

KUBELET_BACKOFF_S = 10.0  # as the simulator's kubelet (vpccni.sim.fleet)
# What a pod waits out (no address yet, ipamd starting or busy); any other refusal is the harness's fault.
WAIT_OUT = (ErrorKind.NO_IP, ErrorKind.NOT_READY, ErrorKind.TRY_AGAIN)


def account_buckets(scale: float, share: float) -> Any:
    """The documented buckets with ``share`` of their size and refill, on a clock ``scale`` times fast."""
    from vpccni.localcloud.ec2.throttle import ThrottleConfig

    return ThrottleConfig.aws_documented().scaled(refill_factor=scale * share, capacity_factor=share)


async def _pods(sockets: list[str], spec: FleetSpec, scale: TimeScale, began: float,
                deadline_s: float, netns_fd: int) -> list[float | None]:
    loop = asyncio.get_running_loop()
    plans = fleet_plan(spec)
    done: list[float | None] = []
    jitter = random.Random(spec.seed + 1)

    async def pod(node: int, index: int, arrive: float, rng: random.Random) -> None:
        await asyncio.sleep(max(began + scale.wall(arrive) - loop.time(), 0.0))
        add = Request(op=Op.ADD, network="fleet", container_id=f"pod-{node}-{index}", ifname="eth0",
                      netns=LABEL)
        while (loop.time() - began) * scale.factor < deadline_s:
            try:
                answer = await call_async(sockets[node], add, netns_fd)
            except (IpamdUnreachable, OSError):
                answer = None  # ipamd still starting (no socket yet): kubelet retries the sandbox
            if answer is not None and answer.ok:
                done.append((loop.time() - began) * scale.factor)
                return
            if answer is not None and answer.error is not None and answer.error.kind not in WAIT_OUT:
                raise RuntimeError(f"ipamd refused pod-{node}-{index}: {answer.error}")
            await asyncio.sleep(scale.wall(KUBELET_BACKOFF_S * (1 + 0.5 * rng.random())))
        done.append(None)

    await asyncio.gather(*(pod(plan.index, n, arrive, random.Random(jitter.random()))
                           for plan in plans for n, arrive in enumerate(plan.arrivals)))
    return done


def run_real(spec: FleetSpec, *, scale: float, share: float,
             deadline_s: float = 4 * 3600.0) -> dict[str, Any]:
    """Boot ``spec``'s fleet as real ipamd processes; figures in cluster seconds."""
    from vpccni.localcloud import LocalCloud
    from vpccni.localcloud.ec2.throttle import ThrottleConfig

    clock = TimeScale(scale)
    plans = fleet_plan(spec)
    with LocalCloud(profile="fast", seed=spec.seed, throttle=ThrottleConfig.disabled()) as cloud, \
            tempfile.TemporaryDirectory(prefix="vpccni-fleet-") as work:
        vpc = cloud.create_vpc(spec.vpc_cidrs[0])
        for extra in spec.vpc_cidrs[1:]:
            cloud.client().associate_vpc_cidr_block(VpcId=vpc.vpc_id, CidrBlock=extra)
        subnets = {s.name: cloud.create_subnet(vpc, s.cidr, az=f"{cloud.region}{s.zone}",
                                               tags=dict([CNI_TAG]) if s.tagged else None)
                   for s in spec.subnets}
        group = cloud.create_security_group(vpc, "fleet-nodes")
        nodes = [cloud.add_node(plan.instance_type, subnet=subnets[plan.subnet], security_groups=[group])
                 for plan in plans]
        cloud.server.throttle.configure(account_buckets(scale, share))
        cloud.server.reset_counters()
        processes = []
        try:
            for n, node in enumerate(nodes):
                paths = IpamdPaths(f"{work}/n{n}")
                env = ipamd_env(ec2_endpoint=cloud.ec2_endpoint, region=cloud.region,
                                imds_endpoint=node.imds_endpoint, paths=paths,
                                settings={**clock.ipamd_timers(), **clock.ipamd_rates()})
                processes.append(IpamdProcess(env, paths))
            began = time.monotonic()
            for process in processes:
                process.start()
            sockets = [p.paths.socket for p in processes]
            with scratch_netns() as netns_fd:  # the pods' namespace, passed open (ipamd plumbs nothing)
                done = asyncio.run(_pods(sockets, spec, clock, began, deadline_s, netns_fd))
            wall = time.monotonic() - began
        finally:
            for process in processes:
                process.terminate()
        counters = cloud.server.counters()
    addressed = [t for t in done if t is not None]
    calls = sum(c.calls for c in counters.values())
    throttled = sum(c.throttled for c in counters.values())
    return {"nodes": len(nodes), "pods": len(done), "addressed": len(addressed),
            "all_addressed_s": max(addressed) if len(addressed) == len(done) else None,
            "calls": calls, "throttled": throttled, "wall_s": round(wall, 1),
            "calls_by_action": {action: c.to_json() for action, c in sorted(counters.items())}}
