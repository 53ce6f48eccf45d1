"""An outside tester's finding: ipamd under RLIMIT_NOFILE 1024 and 1,100 silent connections to its socket.
accept(2) ran out of descriptors, so did the release-record replay, its root task gave up and ipamd exited,
removing its socket. Now the connections it keeps are capped below the limit, the longest idle give way to
new ones, and the daemon, its replay and a normal ADD/DEL carry on. Then: its descriptors under a load of
every outcome return to where they were (none of the namespaces passed to it stays open).
"""

from __future__ import annotations

import os
import resource
import socket
import time
from collections.abc import Callable

from tests.cloud.ipamd.ipamd_harness import Ipamd, ipamd_cloud, run_ipamd, wait_until
from vpccni.wire.client import call
from vpccni.wire.protocol import ErrorKind, Op, Request

__all__ = ["ipamd_cloud", "run_ipamd"]

LIMIT = 1024
SILENT = 1100
RESERVED = 128  # ServerSettings.reserved_fds: what no client connection may take


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as limits:
        line = next(row for row in limits if row.startswith("Max open files"))
    return int(line.split()[3])


def silent_connections(path: str, count: int) -> list[socket.socket]:
    """Connections that never send a byte (each kept open by this process)."""
    held = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:  # the listen queue is full for a moment: ipamd is accepting the others
            sock.close()
            time.sleep(0.001)
            continue
        held.append(sock)
    return held


def test_silent_connections_cannot_use_up_ipamds_descriptors(run_ipamd: Callable[..., Ipamd]) -> None:
    ipamd = run_ipamd(start=False)
    ipamd.start(wait=False)
    assert ipamd.process is not None
    pid = ipamd.process.pid
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (LIMIT, LIMIT))  # before it has even imported anything
    ipamd.process.wait_ready()
    assert soft_nofile(pid) == LIMIT
    ipamd.add_ok("before")
    flood = silent_connections(ipamd.paths.socket, SILENT)
    try:
        assert len(flood) > LIMIT - RESERVED, len(flood)  # more than it could ever hold
        time.sleep(8)  # the replay runs every second: it failed 5 times in a row here, and ipamd exited
        assert ipamd.running, ipamd.log()
        assert fds_of(pid) <= LIMIT - RESERVED + 16, fds_of(pid)  # the reserve stayed free
        ipamd.add_ok("during")  # served while the flood holds on
        assert ipamd.delete("during").ok
        assert os.path.exists(ipamd.paths.socket)
    finally:
        for sock in flood:
            sock.close()
    assert ipamd.delete("before").ok
    assert ipamd.running and "Traceback" not in ipamd.log(400), ipamd.log(400)


def test_ipamds_descriptors_return_to_where_they_were_after_a_load(run_ipamd: Callable[..., Ipamd]) -> None:
    ipamd = run_ipamd(settings={"IP_COOLDOWN_PERIOD": "0"})  # a released address is free again at once
    assert ipamd.process is not None
    pid = ipamd.process.pid
    ipamd.add_ok("warm")
    assert ipamd.delete("warm").ok
    before = fds_of(pid)
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)  # ipamd's too: both in the root one
    try:
        for n in range(60):
            ipamd.add_ok(f"load{n}")
            assert ipamd.request(Op.CHECK, f"load{n}", ifname="eth0").ok
            refused = call(ipamd.paths.socket, Request(op=Op.ADD, network="vpccni", container_id=f"x{n}",
                                                       ifname="eth0"), netns_fd=own)
            assert refused.error is not None and refused.error.kind is ErrorKind.INVALID_NETNS, refused
            assert ipamd.delete(f"load{n}").ok
    finally:
        os.close(own)
    wait_until("ipamd's descriptors back where they were", lambda: fds_of(pid) <= before, timeout_s=10)
