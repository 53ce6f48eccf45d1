"""``vpccni demo``: an emulated cluster whose pods hold VPC addresses, shown by traffic.

What it does, in the order a newcomer sees it on stderr:

1. brings up the local cloud (EC2 semantics + one IMDS per node) and the emulated VPC (a router
   namespace delivering every address to the ENI EC2 says owns it, a remote VPC host in another subnet and
   an internet host outside the VPC), through :class:`~vpccni.testing.cluster.EmulatedCluster`;
2. adds the nodes one by one (m5.large and t3.medium by default), each a network namespace running the
   real ipamd with the Linux dataplane, and says when each can serve an ADD;
3. adds pods through the real CNI plugin executable: two per node, and on the node with the fewest
   addresses per ENI enough to fill its primary ENI and spill one pod onto a secondary ENI;
4. probes each pod by TCP: pod -> remote VPC host and pod -> internet host (each receiver reports the
   source address it saw), and remote VPC host -> pod (the pod answers on its own address);
5. prints one row per pod (:mod:`vpccni.demo.report`): a table, or one JSON object per line.

``--cloud azure`` does the same on the local Azure (:mod:`vpccni.localcloud.azure`): VMs with ipamd set to
VPCCNI_CLOUD=azure, pod addresses as IP configurations of the VMs' NICs, delivered by the same emulated
network; the first node gets nine pods, so its pool grows by a second batch of 16 in one more NIC write,
and no pod needs a second NIC (one holds every pod a VM may run).

Which ENI (NIC) holds a pod's address is asked of EC2 (ARM: the truth), not of ipamd. Everything runs in
namespaces named ``dm<4 hex>-*`` (unique per run, so a demo and a test run side by side) and
:func:`run_demo` removes all of it before it returns, also after a failure, Ctrl-C or SIGTERM. ``--keep``
holds the cluster up after printing, until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import ipaddress
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from vpccni.config import limits
from vpccni.demo.report import PodRow, json_lines, table
from vpccni.localcloud.vpc.netns import ProbeFailed
from vpccni.testing.cluster import ClusterNode, EmulatedCluster, Pod

PODS_PER_NODE = 2
AZURE_FIRST_NODE_PODS = 9  # Azure's defaults: 16 addresses, 8 kept free: the 9th pod asks for a batch more
POD_NAMESPACE = "default"
PREFIX_STEM = "dm"
ONE_LINE_MAX = 400  # characters of a failure message
WAIT_SLICE_S = 0.2
_COUNTS = ("total", "assigned", "cooling")  # how late --keep may notice Ctrl-C (see StopRequest.wait)


def run_prefix() -> str:
    """``dm`` and 4 random hex digits: unique per run, short enough for link names (IFNAMSIZ)."""
    return PREFIX_STEM + secrets.token_hex(2)


class StopRequest:
    """Ctrl-C / SIGTERM, honoured at safe points between steps.

    The handler only records the request; :meth:`check` (called between steps) turns it into
    KeyboardInterrupt. Raising from the handler itself would land at an arbitrary point inside the cluster
    code (a child half started, a server half stopped) and leave the cleanup something it cannot undo.
    Every step is short (a node ~1 s, a pod ~50 ms), so the demo still stops promptly.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested.set()

    def check(self) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt

    def wait(self) -> None:
        """Sleep until a stop is requested (``--keep``).

        In slices, not one unbounded wait: the kernel may deliver SIGINT to any of the process's threads,
        and then nothing interrupts the main thread's lock wait, so the Python handler (which only runs on
        the main thread, between bytecodes) would never run. The slice bounds that delay.
        """
        while not self.requested.wait(WAIT_SLICE_S):
            pass


class Progress:
    """Progress lines on stderr, each stamped with the seconds since the demo started."""

    def __init__(self, prog: str, stream: TextIO | None = None, started: float | None = None) -> None:
        self.prog = prog
        self.stream = stream or sys.stderr
        self.started = time.monotonic() if started is None else started  # time.monotonic() seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str) -> None:
        self.stream.write(f"{self.prog} [{self.elapsed():5.1f}s] {message}\n")
        self.stream.flush()


def azure_pods_per_node(nodes: int) -> list[int]:
    """On Azure: the first node gets one pod more than half a batch, so its pool grows by a second batch of
    IP configurations (one NIC write) while the pods arrive; the others get :data:`PODS_PER_NODE`."""
    return [AZURE_FIRST_NODE_PODS if i == 0 else PODS_PER_NODE for i in range(nodes)]


def pods_per_node(node_types: Sequence[str]) -> list[int]:
    """How many pods each node gets: :data:`PODS_PER_NODE`, except the node whose ENIs hold the fewest
    addresses, which gets one more pod than its primary ENI has secondary addresses (the pod that spills
    onto a secondary ENI). ipamd hands out never-used addresses in the order EC2 gave them, so the primary
    ENI fills first."""
    per_eni = [limits.require(t).ipv4_per_eni for t in node_types]
    counts = [PODS_PER_NODE] * len(node_types)
    if node_types:
        smallest = per_eni.index(min(per_eni))
        counts[smallest] = max(PODS_PER_NODE, per_eni[smallest])  # (per_eni - 1) secondaries, plus one
    return counts


@dataclass(frozen=True)
class EniPlace:
    eni_id: str
    device_index: int


class Demo:
    """One run of the demo over its own :class:`EmulatedCluster`. ``close()`` removes everything."""

    def __init__(
        self,
        node_types: Sequence[str],
        progress: Progress,
        *,
        profile: str = "fast",
        seed: int = 0,
        prefix: str | None = None,
        stop: StopRequest | None = None,
        cloud: str = "aws",
    ) -> None:
        self.node_types = list(node_types)
        self.progress = progress
        self.stop = stop or StopRequest()
        self.prefix = prefix or run_prefix()
        self.azure = cloud == "azure"
        self.cluster = EmulatedCluster([], prefix=self.prefix, profile=profile, seed=seed, cloud=cloud)
        self.pods: list[Pod] = []
        self.interfaces = "NIC(s)" if self.azure else "ENI(s)"

    def close(self) -> None:
        """Remove pods, ipamd processes, namespaces, the cloud; ClusterError if something stayed."""
        self.cluster.close()

    # --- steps ---------------------------------------------------------------------------------------

    def bring_up_cloud(self) -> None:
        if self.azure:
            self.progress.say(
                "starting the local Azure (ARM over https with its own CA, one IMDS and managed identity per "
                "VM) and the emulated virtual network (router, remote VNet host, internet host) ..."
            )
        else:
            self.progress.say(
                "starting the local cloud (EC2 semantics on moto, one IMDS per node) and the "
                "emulated VPC (router, remote VPC host, internet host) ..."
            )
        self.cluster.start()
        self.stop.check()
        if self.azure:
            from vpccni.localcloud.azure.cloud import DEFAULT_VNET_CIDR

            azure = self.cluster.azure
            subnet = ipaddress.ip_network(azure.state.subnet(azure.default_subnet()).prefix)
            self.progress.say(
                f"local Azure up: ARM {azure.endpoint}, virtual network {DEFAULT_VNET_CIDR}, node subnet "
                f"{subnet}; remote VNet host {self.cluster.remote_ip}, internet host "
                f"{self.cluster.internet_ip} (namespaces {self.prefix}-*)"
            )
            return
        vpc, subnet_info, _ = self.cluster.cloud.default_network()
        self.progress.say(
            f"local cloud up: EC2 {self.cluster.cloud.ec2_endpoint}, VPC {vpc.cidr}, node subnet "
            f"{subnet_info.cidr}; remote VPC host {self.cluster.remote_ip}, internet host "
            f"{self.cluster.internet_ip} (namespaces {self.prefix}-*)"
        )

    def add_nodes(self) -> list[ClusterNode]:
        nodes = []
        for number, instance_type in enumerate(self.node_types, start=1):
            self.stop.check()
            started = time.monotonic()
            self.progress.say(f"node {number}: launching a {instance_type} and starting ipamd inside it ...")
            node = self.cluster.add_node(instance_type)
            totals = node.pool()["totals"]
            self.progress.say(
                f"node {number} ready: {short(node.instance_id)} ({instance_type}), primary address "
                f"{node.primary_ip}, ipamd PID {node.ipamd_pid} serving with {totals['free']} free "
                f"addresses on {totals['enis']} {self.interfaces} ({time.monotonic() - started:.1f}s)"
            )
            nodes.append(node)
        return nodes

    def add_pods(self, nodes: Sequence[ClusterNode]) -> None:
        types = [n.instance_type for n in nodes]
        counts = azure_pods_per_node(len(nodes)) if self.azure else pods_per_node(types)
        total = sum(counts)
        for node, count in zip(nodes, counts, strict=True):
            for _ in range(count):
                self.stop.check()
                name = f"web-{len(self.pods) + 1}"
                started = time.monotonic()
                pod = self.cluster.add_pod(node, POD_NAMESPACE, name)
                self.pods.append(pod)
                place = self.eni_of(pod)
                kind = "NIC" if self.azure else "ENI"
                where = (
                    f"primary {kind}"
                    if place.device_index == 0
                    else (f"secondary {kind}, device {place.device_index}")
                )
                self.progress.say(
                    f"pod {len(self.pods)}/{total} {POD_NAMESPACE}/{name} added on {node.name} "
                    f"({node.instance_type}) through the CNI plugin: {pod.ip} from {short(place.eni_id)} "
                    f"({where}) in {(time.monotonic() - started) * 1000:.0f} ms"
                )
            if self.azure:
                pool = settled_pool(node)
                writes = pool["ec2_calls"].get("PutNetworkInterface", {}).get("calls", 0)
                self.progress.say(
                    f"{node.name}: {count} pods; its pool holds {pool['totals']['total']} IP configurations, "
                    f"added in batches of 16 by {writes} NIC write(s) (one write per batch, not per pod)"
                )

    def eni_of(self, pod: Pod) -> EniPlace:
        """The ENI EC2 (the NIC ARM) says holds the pod's address (ipamd's own view is not the proof)."""
        held = self.cluster.interface_of(pod.node, pod.ip)
        if held is None:
            raise ProbeFailed(f"the cloud shows no interface of {pod.node.instance_id} holding {pod.ip}")
        return EniPlace(*held)

    def probe(self) -> list[PodRow]:
        net = "VNet" if self.azure else "VPC"
        self.progress.say(
            f"probing by TCP: each pod -> remote {net} host {self.cluster.remote_ip}, each pod "
            f"-> internet host {self.cluster.internet_ip}, remote {net} host -> each pod ..."
        )
        rows = []
        for pod in self.pods:
            self.stop.check()
            rows.append(self.probe_pod(pod))
        self.progress.say(f"probed {len(rows)} pods")
        return rows

    def probe_pod(self, pod: Pod) -> PodRow:
        place = self.eni_of(pod)
        remote_saw = _seen(lambda: self.cluster.pod_to_remote(pod))
        internet_saw = _seen(lambda: self.cluster.pod_to_internet(pod))
        # The pod's server reports the client address it saw: the remote host's own, if the pod answered.
        reached = _seen(lambda: self.cluster.remote_to_pod(pod)) == self.cluster.remote_ip
        return PodRow(
            pod=f"{pod.namespace}/{pod.name}",
            node=short(pod.node.instance_id),
            instance_type=pod.node.instance_type,
            node_primary_ip=pod.node.primary_ip,
            eni=short(place.eni_id),
            eni_device_index=place.device_index,
            pod_ip=pod.ip,
            remote_saw=remote_saw,
            internet_saw=internet_saw,
            remote_reached_pod=reached,
        )

    def how_to_look_around(self) -> list[str]:
        """What a newcomer can run while ``--keep`` holds the cluster up."""
        lines = []
        for node in self.cluster.nodes:
            lines.append(
                f"  {node.name} {node.instance_id}: ip netns exec {node.netns.name} ip rule; "
                f"vpccni status --introspection {node.paths.introspection}"
            )
        for pod in self.pods[:3]:
            lines.append(f"  {pod.namespace}/{pod.name}: ip netns exec {pod.netns.name} ip addr show eth0")
        return lines


def _seen(probe: Callable[[], str]) -> str:
    """The address the receiver saw, or "" when the probe got no answer (the row shows it)."""
    try:
        return probe()
    except ProbeFailed:
        return ""


def settled_pool(node: ClusterNode, timeout_s: float = 10.0) -> dict[str, Any]:
    """``/v1/pool`` once the last pool pass saw the pool as it is (a write in flight has landed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pool = node.pool()
        decision = pool["last_decision"]
        quiet = decision is not None and not (decision["assign"] or decision["release"])
        # ... and that pass counted what is in use now (a pod added since has not been seen yet).
        seen = quiet and all(decision["basis"][k] == pool["totals"][k] for k in _COUNTS)
        if seen or time.monotonic() > deadline:
            return pool
        time.sleep(0.1)


def short(resource_id: str) -> str:
    """An Azure resource id's name (its last part); an EC2 id as it is."""
    return resource_id.rsplit("/", 1)[-1]


def problems_of(rows: Sequence[PodRow], *, expect_secondary: bool = True) -> list[str]:
    """What the traffic did not show as it should, one line per kind (empty: all as on EC2). On Azure
    (``expect_secondary=False``) no pod needs a second NIC: one NIC holds every pod the VM may run."""
    found = []
    not_same = [r.pod for r in rows if not r.same_address_inside_and_out]
    if not_same:
        found.append(f"the remote VPC host did not see the pod's own address for {', '.join(not_same)}")
    not_snat = [r.pod for r in rows if r.internet_saw != r.node_primary_ip]
    if not_snat:
        found.append(f"the internet host did not see the node's primary address for {', '.join(not_snat)}")
    unreached = [r.pod for r in rows if not r.remote_reached_pod]
    if unreached:
        found.append(f"the remote VPC host could not reach {', '.join(unreached)}")
    if expect_secondary and rows and all(r.eni_device_index == 0 for r in rows):
        found.append("no pod landed on a secondary ENI")
    return found


@dataclass(frozen=True)
class DemoOptions:
    node_types: tuple[str, ...]
    keep: bool = False  # stay up until SIGINT/SIGTERM after printing
    json: bool = False  # one JSON object per pod instead of the table
    profile: str = "fast"  # the local cloud's EC2 latency profile
    seed: int = 0
    cloud: str = "aws"  # or "azure": the local Azure, VMs, NICs and IP configurations


def run_demo(prog: str, options: DemoOptions, out: TextIO | None = None, started: float | None = None) -> int:
    """The whole demo: 0 when traffic showed what EC2 would, 1 if not or on a failure (one line on
    stderr), 130 when interrupted before the table. Everything is removed before returning, also on
    Ctrl-C or SIGTERM: while the demo runs they are recorded and honoured between steps (StopRequest);
    while it cleans up they are ignored (a second Ctrl-C must not cut the cleanup short)."""
    out = out or sys.stdout
    progress = Progress(prog, started=started)
    status = 0
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop.handle) for sig in _STOP_SIGNALS}
    demo: Demo | None = None
    try:
        demo = Demo(options.node_types, progress, profile=options.profile, seed=options.seed, stop=stop,
                    cloud=options.cloud)
        status = _show(demo, options, out)
    except KeyboardInterrupt:
        progress.say("interrupted")
        status = 130
    except Exception as exc:  # a demo reports what failed in one line instead of a traceback
        sys.stderr.write(f"{prog}: failed: {one_line(exc)}\n")
        status = 1
    finally:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            if demo is not None:
                progress.say("removing everything: pods, ipamd processes, namespaces, the local cloud ...")
                demo.close()
        except Exception as exc:
            sys.stderr.write(f"{prog}: cleanup incomplete: {exc}\n")
            status = status or 1
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
    progress.say(f"done in {progress.elapsed():.1f}s" + ("" if status in (0, 130) else " (with problems)"))
    return status


def one_line(exc: BaseException, limit: int = ONE_LINE_MAX) -> str:
    """An exception as one line: its type and message, lines joined (a ClusterError carries a log tail)."""
    text = " | ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(demo: Demo, options: DemoOptions, out: TextIO) -> int:
    demo.bring_up_cloud()
    demo.add_pods(demo.add_nodes())
    rows = demo.probe()
    out.write(
        json_lines(rows)
        if options.json
        else table(rows, demo.cluster.remote_ip, demo.cluster.internet_ip,
                   **({"network": "VNet", "cloud": "Azure"} if demo.azure else {})) + "\n"
    )
    out.flush()
    problems = problems_of(rows, expect_secondary=not demo.azure)
    for problem in problems:
        demo.progress.say(f"unexpected: {problem}")
    if options.keep:
        demo.progress.say("up until Ctrl-C (or SIGTERM); meanwhile, as root, try:")
        for line in demo.how_to_look_around():
            demo.progress.stream.write(line + "\n")
        demo.progress.stream.flush()
        demo.stop.wait()
        demo.progress.say("stopping (Ctrl-C)")
    return 1 if problems else 0


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
