"""ipamd's life: the startup sequence, the supervised root tasks, and a clean stop.

Startup, in order (aws-node's order — IMDS, EC2 client, limits, datastore, serve — except that EC2, not
IMDS, is the truth for what the node holds):

1-5. :func:`ipamd.app.boot.discover`: IMDS identity, the EC2 client and DescribeInstances, the instance
   limits, the dataplane, the checkpoint — plain data, from which :class:`Node` is built without I/O;
6. EC2 sync: our ENIs with their addresses/prefixes as EC2 shows them, tags and DeleteOnTermination
   fixed, host setup per ENI;
7. recovery: the datastore from EC2's ENIs; checkpointed allocations kept only where EC2 still backs
   the address (the datastore never holds an address EC2 did not give us);
8. serve the socket; commit what recovery changed; replay the plugin's release records; ready (DELs
   refused while starting are spooled by the plugin and replayed by the ``release-records`` task);
9. pre-scale: one pool pass right away (``awscni_ipamd_node_initialization_duration_seconds`` is
   observed the first time the pool has a free address, i.e. an ADD would succeed);
10. root tasks: ``server`` (self-PING), ``pool-loop``, ``ec2-reconciler``, ``release-records``,
    ``leaked-eni-gc``, ``slow-cloud-calls`` (logs a cloud call that hangs, while it hangs),
    ``introspection``, ``metrics``, ``conflist`` (written once the pool can serve);
    with the Linux dataplane ``host-network``, with MY_NODE_NAME ``kubernetes``.

On Azure (VPCCNI_CLOUD=azure) the same sequence reads Azure IMDS and ARM instead (steps 1-5 in
:mod:`ipamd.app.boot_azure`; "EC2" below is ARM, an ENI a NIC), and ``leaked-eni-gc`` does not run: NICs
are never created there, so none can leak.

SIGTERM/SIGINT stop the tasks, let requests in flight finish and flush the checkpoint. Nothing is released:
addresses stay with EC2 and in the checkpoint, so pods keep theirs across an ipamd restart or upgrade.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ipamd.app.boot import Boot, discover
from ipamd.app.conflist import ConflistWriter
from ipamd.app.dataplane import CrashingCommitter, CrashingPodNetwork
from ipamd.app.node_facts import Stopped
from ipamd.app.tasks import FailureWindow, TaskFailed, Wakeup, every, self_probe, supervise
from ipamd.dataplane.pod import PodNetwork
from ipamd.observe.feed import MetricsFeed
from ipamd.observe.http import METRICS_TYPE as _METRICS_TYPE
from ipamd.observe.http import HttpEndpoint, Reply, json_reply
from ipamd.observe.metrics import Metrics
from ipamd.observe.views import IPAMD_ENV, NETWORKUTILS_ENV, enis_view, env_view, pool_view
from ipamd.reconcile.context import NodeContext
from ipamd.reconcile.leaks import LeakedEniSweeper
from ipamd.reconcile.reconciler import Reconciler
from ipamd.reconcile.status import GrowthStatus
from ipamd.serve.handler import HandlerSettings, RequestHandler
from ipamd.serve.replay import replay_release_records
from ipamd.serve.server import IpamServer, ServerSettings
from ipamd.state.checkpoint import GroupCommitter, snapshot_of
from ipamd.state.crashpoints import CrashPoints
from ipamd.state.datastore import Datastore
from ipamd.state.journal import ChurnJournal, token
from ipamd.state.recovery import DescribedEni, recover
from vpccni.config.settings import Settings, render
from vpccni.errors import CloudError, RetryableError
from vpccni.wire.protocol import spool_dir_for

if TYPE_CHECKING:  # the Kubernetes client costs ~20 MiB and ~0.2 s: imported only with MY_NODE_NAME
    from ipamd.app.k8s import KubernetesLink
    from ipamd.k8s.annotations import PodIpAnnotator

log = logging.getLogger("ipamd.app.main")

T = TypeVar("T")

IMDS_CHECK_MIN_INTERVAL_S = 1.0
HOST_PASS_MIN_INTERVAL_S = 1.0
REPLAY_MIN_INTERVAL_S = 1.0
POKE_MIN_GAP_S = 0.05
JOURNAL_SUFFIX = ".churn"  # the churn journal's segments sit next to the checkpoint
JOURNAL_FLUSH_S = 2.0  # a crash loses at most this much churn; the ADD path never writes
LEAK_SWEEP_FIRST_MAX_S = 300.0
SLOW_CALL_CHECK_S = 1.0


class Node:
    """Every part of a running ipamd, wired from what :func:`~ipamd.app.boot.discover` found.

    Building it does no I/O; :meth:`start` runs the second half of the startup sequence (steps 6-9 of
    this module's docstring), :meth:`tasks` gives the root tasks, :meth:`close` stops cleanly.
    """

    def __init__(self, settings: Settings, boot: Boot, *, feed: MetricsFeed, metrics: Metrics,
                 wakeup: Wakeup, crash: CrashPoints, conflist: ConflistWriter,
                 kubernetes: KubernetesLink | None, started: float) -> None:
        s = self.settings = settings
        self.started = started  # monotonic: process start, for the startup histograms
        self._initialized = False
        self.boot, self.feed, self.metrics, self.wakeup, self.conflist = boot, feed, metrics, wakeup, conflist
        self.k8s = kubernetes
        self.crash = crash
        self.dataplane = boot.dataplane
        ds = self.datastore = Datastore(prefix_delegation=boot.prefix_delegation,
                                        cooldown_s=s.ip_cooldown_period)
        self.committer = GroupCommitter(s.backing_store, lambda: snapshot_of(ds, time.time()), time.time)
        self.journal = ChurnJournal(s.backing_store + JOURNAL_SUFFIX, journal_header(s, boot))
        ds.on_event = lambda kind, key, held, assigned: self.journal.record(
            kind, token(key.container_id, key.ifname), held, assigned)
        self.status = GrowthStatus(ds, in_flight=boot.in_flight)
        feed.on_throttle = self.status.note_throttle
        hooks = kubernetes.hooks(boot.dataplane.hooks) if kubernetes else boot.dataplane.hooks
        self.reconciler = Reconciler(
            NodeContext(s, boot.facts, boot.limits, boot.provider, ds, self.committer, boot.prefix_delegation,
                        hooks=hooks, metrics=feed, crash=crash),
            self.status, imds=boot.imds)
        podnet: PodNetwork = boot.dataplane.podnet
        self.annotator: PodIpAnnotator | None = None  # ANNOTATE_POD_IP
        if kubernetes is not None and s.annotate_pod_ip:
            from ipamd.k8s.annotations import AnnotatingPodNetwork, PodIpAnnotator

            self.annotator = PodIpAnnotator(kubernetes.agent)
            podnet = AnnotatingPodNetwork(podnet, self.annotator)
        self.handler = RequestHandler(
            ds, CrashingCommitter(self.committer, crash), CrashingPodNetwork(podnet, crash),
            pool_status=self.status, demand=wakeup, metrics=feed,
            settings=HandlerSettings(pod_mtu=s.effective_pod_mtu))
        self.server = IpamServer(self.handler, ServerSettings(socket_path=s.socket_path))
        self.leaks = None
        # Where interfaces cannot be created (Azure), none of ours can leak: no sweep, no listing calls.
        if not (s.disable_leaked_eni_cleanup or s.disable_network_resource_provisioning
                or not boot.provider.can_attach_interfaces):
            self.leaks = LeakedEniSweeper(boot.provider, vpc_id=boot.facts.vpc_id,
                                          cluster_name=s.cluster_name, grace_s=s.leaked_eni_gc_grace,
                                          lock=self.reconciler.lock)
        self.endpoints = self._endpoints()
        if boot.provider.address_writes_are_batched and not s.ip_batch:
            log.warning("VPCCNI_IP_BATCH=0 on a cloud whose every address write rewrites the interface: "
                        "each pod may cost one write (the default batch is 16)")

    async def start(self, retrying: Callable[[str, Callable[[], Awaitable[list[DescribedEni]]]],
                                             Awaitable[list[DescribedEni]]]) -> None:
        """EC2 sync, recovery, host setup, serving, replay, ready, endpoints, the first pool pass."""
        s, ds = self.settings, self.datastore
        views = await retrying("EC2 sync at start", self.reconciler.startup_views)
        pod_exists = await asyncio.to_thread(self.dataplane.recovery_predicate)
        os.makedirs(os.path.dirname(s.backing_store) or ".", mode=0o700, exist_ok=True)
        report = recover(ds, self.boot.checkpoint, views, pod_exists=pod_exists)
        for dropped in report.dropped:
            log.warning("not restoring %s %s: %s", tuple(dropped.allocation.key), dropped.allocation.address,
                        dropped.reason)
        log.info("recovered %d allocation(s) on %d ENI(s); %d dropped", len(report.kept), len(views),
                 len(report.dropped))
        await self.dataplane.host_setup()
        await self.server.start()
        if report.needs_commit:
            await self.committer.commit()
        await replay_release_records(spool_dir_for(s.socket_path), self.handler)
        self.handler.mark_ready()
        self.metrics.ipamd_startup_duration_seconds.labels("true", "false", "").observe(
            time.monotonic() - self.started)
        for endpoint in self.endpoints:
            await endpoint.start()
        if self.k8s is not None:
            await self.k8s.first_read(self.reconciler)
        await self.reconciler.tick()  # pre-scale: fill the pool before the first pod asks
        self.note_initialized()
        facts = self.boot.facts
        log.info("ipamd ready on %s: %s %s, %d ENI(s), %d free address(es)", s.socket_path, facts.instance_id,
                 facts.instance_type, len(ds.enis()), ds.free_count())

    def can_serve(self) -> bool:
        return self.handler.ready and self.datastore.free_count() > 0

    async def _check_vpc_cidrs(self) -> None:
        """A VPC may gain CIDR blocks while the node runs; SNAT must then spare them (aws: every 30 s).
        IMDS is enough here: a lagging answer only delays the update by one period, it removes nothing;
        an IMDS that does not answer is a warning, not a fault of this task. (Azure: the virtual network's
        address space, read from ARM; a refused or failed read is a warning too.)"""
        try:
            cidrs = await asyncio.to_thread(self.boot.vpc_cidrs)
        except (RetryableError, CloudError) as exc:
            log.warning("VPC CIDR watch: %s", exc)
            return
        if cidrs:
            await self.dataplane.update_vpc_cidrs(cidrs)

    def _endpoints(self) -> list[HttpEndpoint]:
        s = self.settings
        endpoints = []
        if not s.disable_introspection:
            routes: dict[str, Callable[[], Reply]] = {
                "/v1/enis": lambda: json_reply(enis_view(self.datastore, self.reconciler.ctx.eni_subnets)),
                "/v1/pool": lambda: json_reply(self._pool()),
                "/v1/ipamd-env-settings": lambda: json_reply(env_view(s, IPAMD_ENV)),
                # The churn journal for vpccni tune: a few MiB read from disk, rarely asked for.
                "/v1/journal": lambda: (200, "text/plain; charset=utf-8", self.journal.read()),
                "/v1/networkutils-env-settings": lambda: json_reply(env_view(s, NETWORKUTILS_ENV)),
                "/healthz": lambda: json_reply({"ok": True, "pool_passes": self.reconciler.ticks}),
                "/readyz": self._readyz,
            }
            routes["/"] = lambda: json_reply({"AvailableCommands": sorted(routes)})
            endpoints.append(HttpEndpoint("introspection", s.introspection_bind_address, routes))
        if not s.disable_metrics:
            endpoints.append(HttpEndpoint("metrics", s.metrics_bind_address, {"/metrics": self._scrape}))
        return endpoints

    def _pool(self) -> dict[str, Any]:
        return pool_view(self.reconciler, self.feed, self.boot.budget, ready=self.handler.ready,
                         leaks=self.leaks, monotonic_now=time.monotonic())

    def _readyz(self) -> Reply:
        free = self.datastore.free_count()
        if self.handler.ready and free > 0:
            return json_reply({"ready": True, "free": free})
        reason, message = self.reconciler.status.why_no_ip()
        return json_reply({"ready": False, "reason": str(reason), "message": message}, 503)

    def _scrape(self) -> Reply:
        current = self.reconciler.status.current
        self.feed.refresh(self.datastore, self.reconciler.capacity, self.reconciler.targets,
                          self.boot.budget.state(), current.reason if current else None)
        return 200, _METRICS_TYPE, self.metrics.exposition()

    def note_initialized(self) -> None:
        """``awscni_ipamd_node_initialization_duration_seconds``, once: when an ADD first would succeed."""
        if not self._initialized and self.datastore.free_count() > 0:
            self._initialized = True
            self.metrics.ipamd_node_initialization_duration_seconds.labels("true").observe(
                time.monotonic() - self.started)

    # --- root tasks ------------------------------------------------------------------------------

    def tasks(self) -> dict[str, Coroutine[Any, Any, None]]:
        s = self.settings
        spool = spool_dir_for(s.socket_path)
        tasks: dict[str, Coroutine[Any, Any, None]] = {
            "server": self_probe(s.socket_path),
            "pool-loop": self._pool_loop(),
            "ec2-reconciler": every(s.ec2_reconcile_period, self.reconciler.periodic_sync,
                                    what="EC2 reconcile", jitter=0.1),
            # The plugin spools a DEL whenever ipamd cannot take it (starting, overloaded, a timeout):
            # records written after the start-up replay are picked up here, not at the next restart.
            "release-records": every(max(s.pool_loop_period, REPLAY_MIN_INTERVAL_S),
                                     lambda: replay_release_records(spool, self.handler),
                                     what="release-record replay"),
        }
        if self.leaks is not None:
            first = random.uniform(0, min(s.leaked_eni_gc_interval, LEAK_SWEEP_FIRST_MAX_S))
            tasks["leaked-eni-gc"] = every(s.leaked_eni_gc_interval, self.leaks.sweep,
                                           what="leaked-ENI sweep", jitter=0.1, first_delay_s=first)
        if self.dataplane.active:
            tasks["host-network"] = every(max(s.pool_loop_period, HOST_PASS_MIN_INTERVAL_S),
                                          lambda: self.dataplane.reconcile(self.datastore),
                                          what="host network pass")
            tasks["vpc-cidrs"] = every(s.vpc_cidr_check_period, self._check_vpc_cidrs, what="VPC CIDR watch",
                                       jitter=0.1)
        tasks["churn-journal"] = every(JOURNAL_FLUSH_S, lambda: asyncio.to_thread(self.journal.flush),
                                       what="churn journal flush")
        tasks["slow-cloud-calls"] = every(SLOW_CALL_CHECK_S, self._log_slow_calls,
                                          what="slow cloud call watch")
        tasks["conflist"] = self.conflist.run()
        if self.k8s is not None:
            from ipamd.app.k8s import REFRESH_S as K8S_REFRESH_S

            link = self.k8s
            refresh = lambda: link.refresh(self.reconciler, self._node_ready)  # noqa: E731
            self.conflist.on_in_place = refresh  # the taint goes as soon as the conflist is in place
            tasks["kubernetes"] = every(K8S_REFRESH_S, refresh, what="Kubernetes refresh", jitter=0.1,
                                        first_delay_s=0.0)
        if self.annotator is not None:
            tasks["pod-annotations"] = self.annotator.run()
        for endpoint in self.endpoints:
            tasks[endpoint.name] = endpoint.serve_forever()
        return tasks

    async def _log_slow_calls(self) -> None:
        """A cloud call that hangs is logged while it hangs (when it passes SLOW_CALL_S, then as its age
        doubles): its attempts end in silence until the retry policy gives up, a minute later."""
        in_flight = self.boot.in_flight
        now = in_flight.now()
        for call in in_flight.newly_slow():
            log.warning("EC2 %s, longer than expected (%gs)", call.describe(now), in_flight.slow_after_s)

    def _node_ready(self) -> bool:  # the startup taint waits for kubelet's conflist too
        return self.can_serve() and self.conflist.in_place

    async def _pool_loop(self) -> None:
        failures = FailureWindow("pool pass")
        imds_every = max(self.settings.pool_loop_period, IMDS_CHECK_MIN_INTERVAL_S)
        imds_due = time.monotonic() + imds_every
        while True:
            await self.wakeup.wait()
            try:
                await self.reconciler.tick()
                self.note_initialized()
                if time.monotonic() >= imds_due:
                    imds_due = time.monotonic() + imds_every
                    await self.reconciler.check_imds()
            except (asyncio.CancelledError, TaskFailed):
                raise
            except Exception as exc:
                failures.failed(exc)

    async def close(self) -> None:
        """Requests in flight finish and the checkpoint is flushed; nothing is released."""
        for endpoint in self.endpoints:
            await endpoint.close()
        await self.server.close()
        await self.committer.aclose()
        self.journal.flush()
        if self.k8s is not None:
            self.k8s.close()


class Daemon:
    """ipamd's life: discover the node, build and start a :class:`Node`, supervise its tasks, stop cleanly."""

    def __init__(self, settings: Settings, crash: CrashPoints, started: float) -> None:
        self.settings = settings
        self.crash = crash
        self.started = started  # monotonic: process start, for the startup histograms
        self.stop = asyncio.Event()
        self.metrics = Metrics()
        self.feed = MetricsFeed(self.metrics)
        self.wakeup = Wakeup(settings.pool_loop_period, POKE_MIN_GAP_S)
        self.conflist = ConflistWriter(settings, self._can_serve)  # ipamd.app.conflist: why gated
        self.node: Node | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        try:
            try:
                boot = await discover(self.settings, self.feed, self.stop)
                node = self.node = Node(self.settings, boot, feed=self.feed, metrics=self.metrics,
                                        wakeup=self.wakeup, crash=self.crash, conflist=self.conflist,
                                        kubernetes=self._kubernetes(boot.facts.security_group_ids),
                                        started=self.started)
                await node.start(self._retrying)
            except Stopped as stopped:
                log.info("stopped while waiting for %s", stopped)
                return 0
            fault = await supervise(node.tasks(), self.stop)
            return 1 if fault else 0
        finally:
            if self.stop.is_set():  # SIGTERM/SIGINT, not a fault: VPCCNI_REMOVE_CONFLIST_ON_SHUTDOWN applies
                self.conflist.clean_shutdown()
            if self.node is not None:
                await self.node.close()

    def _can_serve(self) -> bool:
        return self.node is not None and self.node.can_serve()

    def _kubernetes(self, primary_groups: tuple[str, ...]) -> KubernetesLink | None:
        if not self.settings.node_name:
            log.info("MY_NODE_NAME is unset: running without the Kubernetes API")
            return None
        from ipamd.app.k8s import KubernetesLink
        from ipamd.k8s.integration import K8sNodeAgent

        return KubernetesLink(K8sNodeAgent.from_settings(self.settings), primary_groups)

    async def _retrying(self, what: str, step: Callable[[], Awaitable[T]]) -> T:
        delay = 0.2
        while True:
            try:
                return await step()
            except RetryableError as exc:
                log.warning("%s: %s (retrying)", what, exc)
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
                raise Stopped(what)
            except TimeoutError:
                delay = min(delay * 2, 5.0)


def journal_header(settings: Settings, boot: Boot) -> dict[str, Any]:
    """What ``vpccni tune`` needs to replay this node's churn: the node and the settings it ran with."""
    variables = {variable: render(getattr(settings, name))
                 for name, variable in settings.env_supplied.items()}
    return {"instance_id": boot.facts.instance_id, "node_name": settings.node_name or "",
            "instance_type": boot.facts.instance_type, "zone": boot.facts.availability_zone,
            "subnet_id": boot.facts.subnet_id, "prefix_delegation": boot.prefix_delegation,
            "settings": variables}
