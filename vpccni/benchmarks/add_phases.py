"""The measuring parts of ``vpccni bench add``: timed plugin execs, ipamd's own ADD time, the RPC floor.

Plugin execs are spawned from a thread that has entered the node's network namespace (setns moves only
that thread; a child inherits the namespace of the thread that spawned it), so what is timed is what a
runtime pays: exec of the installed launcher -> its result on stdout and its exit. No ``ip netns exec``
wrapper is on the timed path.

ipamd's own time comes from its ``vpccni_rpc_duration_seconds{op="ADD"}`` histogram (lock acquired ->
address assigned, made durable and the pod plumbed), read from its metrics endpoint inside the node
namespace before and after a phase: the difference is exactly that phase's ADDs.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from vpccni.benchmarks.stats import LatencySummary
from vpccni.net.nsutil import run_in_netns
from vpccni.wire.client import call
from vpccni.wire.introspection import http_get
from vpccni.wire.protocol import Op, Request

T = TypeVar("T")
RPC_HISTOGRAM = "vpccni_rpc_duration_seconds"


@dataclass(frozen=True)
class PluginCall:
    """One plugin exec as a runtime makes it: environment (CNI_* and PATH) and stdin."""

    env: Mapping[str, str]
    stdin: bytes


@dataclass(frozen=True)
class ExecResult:
    seconds: float  # exec -> result read -> exit (in a burst: from the burst's common start)
    cpu_seconds: float  # the plugin process's own user + system CPU
    returncode: int
    stdout: str
    ended_at: float = 0.0  # time.perf_counter() when the exec was reaped

    def error_key(self) -> str:
        """How a failed exec is counted: its CNI error code and message."""
        try:
            error = json.loads(self.stdout)
            return f"code {error.get('code')}: {error.get('msg', '')}"
        except ValueError:
            return f"exit {self.returncode}: {self.stdout[:120]!r}"


def exec_timed(argv: Sequence[str], request: PluginCall) -> ExecResult:
    """exec -> result -> exit of the plugin, and its CPU time.

    Reaped with wait4 (not ``communicate``, which reaps without resource usage) so that each exec reports
    its own CPU: unlike the wall time, that does not grow with the machine's load. The plugin bounds its
    own wait for ipamd (the conflist's timeout), so no timeout is needed here."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=dict(request.env))
    assert proc.stdin is not None and proc.stdout is not None
    with contextlib.suppress(BrokenPipeError):  # a plugin that fails early may not read stdin
        proc.stdin.write(request.stdin)
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    out = proc.stdout.read()
    proc.stdout.close()
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.perf_counter()
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait for it again
    return ExecResult(ended - started, usage.ru_utime + usage.ru_stime, proc.returncode, out.decode(), ended)


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds process ``pid`` has used so far (0.0 if it is gone or None)."""
    if pid is None:
        return 0.0
    from vpccni.benchmarks.rpc import _cpu_seconds

    return _cpu_seconds(pid)


def in_netns(netns: str, func: Callable[[], T]) -> T:
    """``func`` run by a thread inside ``netns`` (children it spawns are born there)."""
    return run_in_netns(netns, func)


@dataclass
class Burst:
    """``len(calls)`` execs started together; per-exec latencies and the time until the last finished."""

    results: list[ExecResult] = field(default_factory=list)
    all_done_s: float = 0.0


def burst(netns: str, argv: Sequence[str], calls: Sequence[PluginCall]) -> Burst:
    """One thread per exec, each inside ``netns``, released together by a barrier (as a runtime starts a
    burst of sandboxes). Every exec's latency, and ``all_done_s``, count from the moment the barrier
    opens: a thread that spawns its exec late (the others hold the CPU) has waited all along, as the
    pod it stands for has."""
    gate = threading.Barrier(len(calls) + 1)
    slots: list[ExecResult | BaseException | None] = [None] * len(calls)

    def worker(index: int) -> None:
        def body() -> ExecResult:
            gate.wait()
            return exec_timed(argv, calls[index])

        try:
            slots[index] = in_netns(netns, body)
        except BaseException as exc:  # re-raised below, in the caller's thread
            slots[index] = exc

    threads = [threading.Thread(target=worker, args=(i,), name=f"bench-add-{i}") for i in range(len(calls))]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    out = Burst(all_done_s=time.perf_counter() - started)
    for slot in slots:
        if not isinstance(slot, ExecResult):
            raise RuntimeError(f"a burst exec did not complete: {slot!r}")
        out.results.append(replace(slot, seconds=slot.ended_at - started))
    return out


# --- ipamd's own time, from its metrics ----------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """One label set of a Prometheus histogram: cumulative bucket counts by upper bound, sum, count."""

    buckets: tuple[tuple[float, float], ...]
    sum_s: float
    count: float

    def minus(self, before: Histogram) -> Histogram:
        earlier = dict(before.buckets)
        return Histogram(tuple((le, n - earlier.get(le, 0.0)) for le, n in self.buckets),
                         self.sum_s - before.sum_s, self.count - before.count)

    def summary_ms(self) -> dict[str, float]:
        """Mean, and the bucket bounds that hold the median and the 99th percentile ("at most")."""
        if self.count <= 0:
            return {"count": 0, "mean": 0.0, "p50_at_most": 0.0, "p99_at_most": 0.0}

        def bound(q: float) -> float:
            rank = math.ceil(q * self.count)
            return next((le for le, n in self.buckets if n >= rank), math.inf)

        return {"count": int(self.count), "mean": round(self.sum_s / self.count * 1000, 3),
                "p50_at_most": bound(0.5) * 1000, "p99_at_most": bound(0.99) * 1000}


EMPTY_HISTOGRAM = Histogram((), 0.0, 0.0)


def parse_histogram(text: str, name: str, labels: Mapping[str, str]) -> Histogram:
    """The histogram ``name`` with ``labels`` from a text exposition (empty if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: list[tuple[float, float]] = []
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), float(sample.value)))
            elif sample.name.endswith("_sum"):
                total = float(sample.value)
            elif sample.name.endswith("_count"):
                count = float(sample.value)
    return Histogram(tuple(sorted(buckets)), total, count)


def ipamd_add_histogram(netns: str, metrics_address: str) -> Histogram:
    """ipamd's ADD service-time histogram now, read inside the node namespace (where it listens)."""
    status, body = in_netns(netns, lambda: http_get(metrics_address, "/metrics"))
    if status != 200:
        raise RuntimeError(f"ipamd metrics at {metrics_address}: HTTP {status}")
    return parse_histogram(body.decode(), RPC_HISTOGRAM, {"op": "ADD"})


# --- the RPC floor: ipamd's server without plumbing -----------------------------------------------


def rpc_floor(workdir: str, runs: int) -> LatencySummary:
    """ADD over the socket of a real ipamd server with no plumbing (``ipamd.app.benchserve``: the production
    server, datastore and durable group commit, a fake ENI): connect, send, assign, fsync, answer, from a
    warm client. Each ADD is followed by an untimed DEL. One untimed pair first."""
    from vpccni.benchmarks.rpc import _read_event, _start_server
    from vpccni.testing.scratch_netns import LABEL, scratch_netns

    proc, socket_path = _start_server(workdir, addresses=64)
    samples: list[float] = []
    netns = contextlib.ExitStack()
    try:
        assert proc.stdout is not None
        _read_event(proc.stdout, "ready")
        netns_fd = netns.enter_context(scratch_netns())  # passed with each ADD; nothing is plumbed
        for n in range(runs + 1):
            add = Request(op=Op.ADD, network="bench", container_id=f"floor{n}", ifname="eth0",
                          netns=LABEL, deadline_ms=10_000)
            started = time.perf_counter()
            answer = call(socket_path, add, netns_fd=netns_fd)
            elapsed = time.perf_counter() - started
            if not answer.ok:
                raise RuntimeError(f"ipamd.app.benchserve refused an ADD: {answer.error}")
            if n:
                samples.append(elapsed)
            call(socket_path, Request(op=Op.DEL, network="bench", container_id=f"floor{n}", ifname="eth0",
                                      reason="PodDeleted", deadline_ms=10_000))
    finally:
        netns.close()
        proc.terminate()
        try:
            proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    return LatencySummary.of(samples)


LAUNCHER_LAST_LINE = "sys.exit(main())"


@dataclass(frozen=True)
class InstalledPlugin:
    """How the installed plugin starts, for its floors: the payload's static launcher (its own loader and
    interpreter) or the development launcher (a script run by this environment's interpreter)."""

    kind: str  # "payload" or "development launcher"
    interpreter: tuple[str, ...]  # argv starting the plugin's interpreter with the plugin's flags
    imports: tuple[str, ...]  # argv doing what the plugin does up to calling main(): start + every import


def installed_plugin(launcher: str) -> InstalledPlugin:
    """Read the installed ``vpccni`` and what it runs."""
    with open(launcher, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":
        from vpccni.node.payload import CURRENT, INTERPRETER, LOADER, PYTHON_FLAGS, TREES

        tree = os.path.realpath(os.path.join(os.path.dirname(launcher), TREES, CURRENT))
        start = (f"{tree}/{LOADER}", "--library-path", f"{tree}/lib", f"{tree}/{INTERPRETER}", *PYTHON_FLAGS)
        probe = f"import sys; sys.path.append({tree + '/app'!r}); import plugin.main"
        return InstalledPlugin("payload", start, (*start, "-c", probe))
    return InstalledPlugin("development launcher", tuple(launcher_interpreter(launcher)),
                           tuple(launcher_imports_probe(launcher)))


def launcher_interpreter(launcher: str) -> list[str]:
    """The interpreter and flags on a development launcher's shebang line."""
    with open(launcher, encoding="utf-8") as f:
        first = f.readline()
    if not first.startswith("#!"):
        raise RuntimeError(f"{launcher} has no shebang line")
    return first[2:].split()


def launcher_imports_probe(launcher: str) -> list[str]:
    """argv that does everything a development launcher does up to calling ``main()``."""
    with open(launcher, encoding="utf-8") as f:
        body = f.read().rstrip("\n")
    if not body.endswith(LAUNCHER_LAST_LINE):
        raise RuntimeError(f"{launcher} does not end with {LAUNCHER_LAST_LINE!r}; cannot time its imports")
    return [*launcher_interpreter(launcher), "-c", body.removesuffix(LAUNCHER_LAST_LINE)]


def version_floor(launcher: str, runs: int) -> LatencySummary:
    """The installed plugin answering VERSION: everything an ADD execs, imports and prints, without ipamd.
    One untimed run first."""
    call = PluginCall({**plain_env(), "CNI_COMMAND": "VERSION"}, b"")
    runs_s = [exec_timed([launcher], call) for _ in range(runs + 1)]
    failed = [r for r in runs_s if r.returncode != 0]
    if failed:
        raise RuntimeError(f"{launcher} failed VERSION: {failed[0].stdout}")
    return LatencySummary.of([r.seconds for r in runs_s[1:]])


def plain_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
