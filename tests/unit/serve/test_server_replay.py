"""Release records spooled by the plugin while ipamd was down are replayed at start: each release is
durable before its record is deleted; failures stay for the next start; malformed ones are kept aside."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from ipamd.serve.handler import RequestHandler
from ipamd.serve.replay import replay_release_records
from ipamd.state.checkpoint import GroupCommitter, load_checkpoint, snapshot_of
from ipamd.state.datastore import AllocationKey, Datastore
from ipamd.state.recovery import recover
from tests.unit.serve.server_harness import NETNS, RecordingPodNetwork, add, eni
from vpccni.net.nsutil import NetnsFd
from vpccni.testing.scratch_netns import scratch_netns
from vpccni.wire.protocol import (
    AllocationResult,
    Op,
    Request,
    encode_release_record,
    encode_request,
    release_record_name,
    spool_dir_for,
)


def ipamd_from(state: str, podnet: RecordingPodNetwork) -> tuple[Datastore, GroupCommitter, RequestHandler]:
    ds = Datastore(cooldown_s=30, clock=time.time)
    recover(ds, load_checkpoint(state), [eni(4)])
    committer = GroupCommitter(state, lambda: snapshot_of(ds, time.time()), time.time)
    return ds, committer, RequestHandler(ds, committer, podnet)


def record(spool: str, cid: str, content: bytes | None = None) -> str:
    name = release_record_name("vpccni", cid, "eth0")
    req = Request(op=Op.DEL, network="vpccni", container_id=cid, ifname="eth0", netns=NETNS)
    Path(spool, name).write_bytes(content if content is not None else encode_release_record(req))
    return name


def test_release_records_are_replayed_before_serving(tmp_path: Path) -> None:
    state = str(tmp_path / "ipam.json")
    spool = spool_dir_for(str(tmp_path / "ipamd.sock"))
    os.makedirs(spool)

    async def first_life() -> None:
        _, committer, handler = ipamd_from(state, RecordingPodNetwork())
        handler.mark_ready()
        with scratch_netns() as pod_netns:
            for cid in ("gone", "alive", "stuck"):
                assert (await handler.handle(add(cid), time.monotonic(), pod_netns)).ok
        await committer.aclose()

    asyncio.run(first_life())
    gone = record(spool, "gone")
    unknown = record(spool, "never-known")
    stuck = record(spool, "stuck")
    garbage = record(spool, "garbage", b"{not json")
    not_del = record(spool, "notdel", encode_request(add("notdel")))
    Path(spool, "partial.json.tmp").write_bytes(b"{")  # the plugin's half-written temp: not a record

    class FailsForStuck(RecordingPodNetwork):
        async def teardown(self, alloc: AllocationResult | None, req: Request, ns: NetnsFd | None) -> None:
            assert ns is None  # a replayed DEL comes without the pod's namespace: the host side only
            await super().teardown(alloc, req, ns)
            if req.container_id == "stuck":
                raise OSError("rule delete: Device or resource busy")

    async def second_life() -> None:
        ds, committer, handler = ipamd_from(state, FailsForStuck())
        assert not handler.ready  # replay runs before the handler serves anything
        report = await replay_release_records(spool, handler)
        assert sorted(report.replayed) == sorted([gone, unknown])
        assert [name for name, _ in report.failed] == [stuck] and "busy" in report.failed[0][1]
        assert sorted(name for name, _ in report.malformed) == sorted([garbage, not_del])
        on_disk = load_checkpoint(state)
        assert on_disk is not None
        assert sorted(a.key.container_id for a in on_disk.allocations) == ["alive", "stuck"]
        assert ds.get(AllocationKey("vpccni", "gone", "eth0")) is None
        assert len(on_disk.cooldown) == 1  # the replayed release cools down like any other
        await committer.aclose()

    asyncio.run(second_life())
    left = sorted(os.listdir(spool))
    assert left == sorted([stuck, garbage + ".bad", not_del + ".bad", "partial.json.tmp"])


def test_missing_spool_directory_is_nothing_to_replay(tmp_path: Path) -> None:
    async def main() -> None:
        _, committer, handler = ipamd_from(str(tmp_path / "ipam.json"), RecordingPodNetwork())
        report = await replay_release_records(str(tmp_path / "no-spool"), handler)
        assert report.replayed == () and report.failed == () and report.malformed == ()
        await committer.aclose()

    asyncio.run(main())
