"""What ipamd does for each plugin request (ADD, DEL, CHECK, GC, STATUS, PING), apart from the socket.

The pod's namespace is the descriptor that came with the request (:mod:`ipamd.dataplane.netns` checks
it: a network namespace, and neither ipamd's own nor the host's), never a path: ADD and CHECK need one, a
DEL has one while the namespace exists. A descriptor that fails the check refuses the request with
``invalid_netns`` before anything changes, whatever the verb. The caller (the server) owns the descriptor
and closes it after the reply.

Order of an ADD: validate identifiers and the namespace -> hold the key -> (deadline check) -> assign ->
durable commit -> plumb -> reply. A reply is only sent for state already on disk. If plumbing fails the
assignment is rolled back (durably) and the reply says ``plumbing``; nothing is left half-done.

DEL: hold the key -> tear down -> release into cooldown -> durable commit -> reply. An unknown key is
success (the address may already be gone), a DEL without namespace or prevResult is success (the host side
is torn down); a teardown that fails on something still present keeps the address and fails, so the
runtime retries rather than the address being reused under a stale route.

Versions (:mod:`vpccni.wire.protocol`): a request is answered in its own version. A version-1 ADD or CHECK
(a plugin that names the namespace by path) is refused with ``unsupported_version``; version 1's other
verbs are served.

GC releases every allocation of the request's network whose attachment is not in the valid list, in one
commit, exclusive of ADD/DEL. Before :meth:`RequestHandler.mark_ready` (restart recovery not finished)
ADD/DEL/CHECK/GC answer ``not_ready``; STATUS says why; PING always answers.

Deadlines: ``deadline_ms`` is the client's budget counted from when ipamd read the request. It is checked
once the key is held, before anything changes: an expired request answers ``try_again`` with nothing
done. Once an ADD/DEL has started changing state it runs to the end.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipamd.dataplane.netns import NetnsGuard
from ipamd.dataplane.pod import PodNetwork
from ipamd.serve.keylocks import KeyLocks
from ipamd.state.checkpoint import CheckpointWriteError, Committer
from ipamd.state.datastore import Allocation, AllocationKey, Datastore
from ipamd.state.hooks import (
    DatastorePoolStatus,
    InMemoryServerMetrics,
    NoDemandSignal,
    PoolDemand,
    PoolStatus,
    ServerMetrics,
)
from vpccni.errors import InterfaceExists
from vpccni.net.nsutil import NetnsFd
from vpccni.wire.protocol import (
    NETNS_FD_SINCE,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    AllocationResult,
    ErrorKind,
    NoIpReason,
    Op,
    Request,
    Response,
    validate_identifiers,
)

log = logging.getLogger(__name__)

OK = Response(ok=True)


@dataclass(frozen=True)
class HandlerSettings:
    pod_mtu: int = 9001  # POD_MTU: MTU of the pod's interface, bytes (aws default 9001)
    gateway: str = "169.254.1.1"  # the pod's default gateway (link-local; the host veth answers ARP)


class RequestHandler:
    def __init__(
        self,
        datastore: Datastore,
        committer: Committer,
        podnet: PodNetwork,
        *,
        pool_status: PoolStatus | None = None,
        demand: PoolDemand | None = None,
        metrics: ServerMetrics | None = None,
        settings: HandlerSettings | None = None,
        netns_guard: NetnsGuard | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ds = datastore
        self._committer = committer
        self._podnet = podnet
        self._pool_status = pool_status or DatastorePoolStatus(datastore)
        self._demand: PoolDemand = demand or NoDemandSignal()
        self.metrics: ServerMetrics = metrics or InMemoryServerMetrics()
        self._settings = settings or HandlerSettings()
        self._monotonic = monotonic
        self._guard = netns_guard or NetnsGuard()
        self.locks = KeyLocks()  # public for introspection; only the handler takes them
        self.ready = False

    def mark_ready(self) -> None:
        """Recovery is done: serve ADD/DEL/CHECK/GC."""
        self.ready = True

    async def handle(self, req: Request, received_at: float, netns_fd: int | None = None) -> Response:
        """Answer one request read at monotonic time ``received_at``; ``netns_fd`` is the descriptor that
        came with it (still the caller's to close)."""
        response = await self._handle(req, received_at, netns_fd)
        if req.v in SUPPORTED_VERSIONS and response.v != req.v:
            return response._replace(v=req.v)
        return response

    async def _handle(self, req: Request, received_at: float, netns_fd: int | None) -> Response:
        if req.v not in SUPPORTED_VERSIONS:
            return Response.failure(ErrorKind.UNSUPPORTED_VERSION, f"protocol version {req.v} is not "
                                    f"supported (ipamd speaks {PROTOCOL_VERSION}, and 1 for all but ADD and "
                                    f"CHECK)")
        if req.op is Op.PING:
            return Response(ok=True, status={"ready": self.ready, "pid": os.getpid()})
        if req.op is Op.STATUS:
            return self._status()
        problem = validate_identifiers(req)
        if problem is not None:
            return Response.failure(ErrorKind.BAD_REQUEST, problem)
        if not self.ready:
            return Response.failure(ErrorKind.NOT_READY, "ipamd is still recovering its state after a start",
                                    NoIpReason.STARTING)
        if req.op is Op.ADD:
            response = await self._add(req, received_at, netns_fd)
            error = response.error
            self.metrics.add_request("ok" if error is None else str(error.kind))
            self._demand.poke()  # an address was taken, or none was there: the pool looks again now
            return response
        if req.op is Op.GC:
            if netns_fd is not None:
                return Response.failure(ErrorKind.BAD_REQUEST, "a GC takes no network namespace descriptor")
            return await self._gc(req, received_at)
        ns = self._namespace(req, netns_fd)
        if isinstance(ns, Response):
            return ns
        if req.op is Op.DEL:
            return await self._del(req, received_at, ns)
        assert ns is not None  # CHECK: _namespace refuses one without
        return await self._check(req, ns)

    async def replay_del(self, req: Request) -> Response:
        """A DEL the plugin spooled while ipamd was down; runs before the handler is ready. The host side
        is torn down; the pod's namespace, if it still exists, goes with its pod."""
        return await self._del(req, self._monotonic(), None)

    def _namespace(self, req: Request, netns_fd: int | None) -> NetnsFd | Response | None:
        """The request's namespace, checked; None for a DEL without one; a refusal otherwise."""
        if req.op in (Op.ADD, Op.CHECK) and req.v < NETNS_FD_SINCE:
            return Response.failure(
                ErrorKind.UNSUPPORTED_VERSION,
                f"a protocol version {req.v} {req.op} names the pod's network namespace by path, which ipamd "
                f"no longer opens; it needs the namespace passed open (protocol {NETNS_FD_SINCE}): upgrade "
                "the vpccni CNI plugin on this node (the DaemonSet's init container installs it)")
        if netns_fd is None:
            if req.op is Op.DEL:
                return None
            return Response.failure(
                ErrorKind.INVALID_NETNS,
                f"no network namespace came with the {req.op}: the plugin passes CNI_NETNS "
                f"({req.netns or 'unset'}) open with its request")
        checked = self._guard.check(netns_fd, req.netns)
        if isinstance(checked, str):
            return Response.failure(ErrorKind.INVALID_NETNS, checked)
        return checked

    # --- operations ------------------------------------------------------------------------------

    async def _add(self, req: Request, received_at: float, netns_fd: int | None) -> Response:
        ns = self._namespace(req, netns_fd)
        if isinstance(ns, Response):
            return ns
        assert ns is not None  # an ADD without one is refused above
        key = AllocationKey(*req.key)
        async with self.locks.key(key):
            started = self._monotonic()
            if self._expired(req, received_at, started):
                return self._too_late(req, "ADD")
            held = self._ds.get(key)
            if held is None:
                held = self._ds.assign(key, pod=req.pod, netns=ns.label)
                if held is None:
                    reason, why = self._pool_status.why_no_ip()
                    self.metrics.no_ip(reason)
                    return Response.failure(ErrorKind.NO_IP, f"no free address on this node: {why}", reason)
                try:
                    await self._committer.commit()
                except CheckpointWriteError as exc:
                    self._ds.release(key, cooldown=False)
                    self.metrics.error("checkpoint")
                    return Response.failure(ErrorKind.INTERNAL, f"assignment not durable: {exc}")
            alloc = self._allocation(held)
            try:
                alloc = await self._podnet.setup(alloc, req, ns)
            except Exception as exc:  # any plumbing failure: roll back, the pod gets nothing half-done
                log.warning("ADD %s: plumbing %s failed, rolling back: %s", tuple(key), held.address, exc)
                await self._roll_back(key, alloc, req, ns)
                if isinstance(exc, InterfaceExists):  # the runtime's CNI_IFNAME is wrong, not the node
                    return Response.failure(ErrorKind.IFNAME_EXISTS, str(exc))
                return Response.failure(ErrorKind.PLUMBING, f"plumbing {held.address} failed: {exc}")
            self.metrics.assign_latency(self._monotonic() - started)
            return Response(ok=True, allocation=alloc)

    async def _roll_back(self, key: AllocationKey, alloc: AllocationResult, req: Request,
                         ns: NetnsFd) -> None:
        try:
            await self._podnet.teardown(alloc, req, ns)
        except Exception as exc:
            self.metrics.error("teardown")
            log.warning("ADD %s: teardown after failed plumbing failed too: %s", tuple(key), exc)
        self._ds.release(key, cooldown=False)
        try:
            await self._committer.commit()
        except CheckpointWriteError as exc:
            # The release stays in memory; the next successful commit carries it.
            self.metrics.error("checkpoint")
            log.error("ADD %s: rollback not yet durable: %s", tuple(key), exc)

    async def _del(self, req: Request, received_at: float, ns: NetnsFd | None) -> Response:
        key = AllocationKey(*req.key)
        async with self.locks.key(key):
            if self._expired(req, received_at, self._monotonic()):
                return self._too_late(req, "DEL")
            held = self._ds.get(key)
            try:
                await self._podnet.teardown(self._allocation(held) if held else None, req, ns)
            except Exception as exc:
                self.metrics.error("teardown")
                return Response.failure(ErrorKind.PLUMBING, f"teardown failed, address kept: {exc}")
            if held is not None:
                self._ds.release(key)
                try:
                    await self._committer.commit()
                except CheckpointWriteError as exc:
                    self.metrics.error("checkpoint")
                    return Response.failure(ErrorKind.INTERNAL, f"release of {held.address} not durable: "
                                            f"{exc}")
            self.metrics.del_request(req.reason or "PodDeleted")
            self._demand.poke()
            return OK

    async def _check(self, req: Request, ns: NetnsFd) -> Response:
        key = AllocationKey(*req.key)
        async with self.locks.key(key):
            held = self._ds.get(key)
            if held is None:
                return Response.failure(ErrorKind.CHECK_FAILED,
                                        f"ipamd holds no address for network {key.network!r}, container "
                                        f"{key.container_id!r}, interface {key.ifname!r}")
            problems = await self._podnet.check(self._allocation(held), req, ns)
            if problems:
                return Response.failure(ErrorKind.CHECK_FAILED, "; ".join(problems))
            return OK

    async def _gc(self, req: Request, received_at: float) -> Response:
        async with self.locks.exclusive():
            if self._expired(req, received_at, self._monotonic()):
                return self._too_late(req, "GC")
            valid = {(a.container_id, a.ifname) for a in req.valid_attachments}
            stale = [a for a in self._ds.allocations()
                     if a.key.network == req.network and (a.key.container_id, a.key.ifname) not in valid]
            released, failures = 0, []
            for held in stale:
                del_req = Request(op=Op.DEL, network=held.key.network, container_id=held.key.container_id,
                                  ifname=held.key.ifname, netns=held.netns, pod=held.pod, reason="GC")
                try:
                    await self._podnet.teardown(self._allocation(held), del_req, None)  # host side
                except Exception as exc:  # continue past errors (spec) and report them
                    self.metrics.error("teardown")
                    failures.append(f"{held.key.container_id}/{held.key.ifname}: {exc}")
                    continue
                self._ds.release(held.key)
                self.metrics.del_request("GC")
                released += 1
            if released:
                try:
                    await self._committer.commit()
                except CheckpointWriteError as exc:
                    self.metrics.error("checkpoint")
                    return Response.failure(ErrorKind.INTERNAL, f"GC released {released}, not durable: {exc}")
            if failures:
                return Response.failure(ErrorKind.PLUMBING, f"GC released {released}; could not tear down "
                                        f"{len(failures)}: " + "; ".join(failures))
            return Response(ok=True, released=released)

    def _status(self) -> Response:
        if not self.ready:
            return Response.failure(ErrorKind.NOT_READY, "ipamd is still recovering its state after a start",
                                    NoIpReason.STARTING)
        stats = self._ds.stats()
        if stats.free > 0:
            return Response(ok=True, status={"free": stats.free, "assigned": stats.assigned,
                                             "cooling": stats.cooling, "total": stats.total})
        reason, why = self._pool_status.why_no_ip()
        return Response.failure(ErrorKind.NO_IP, f"an ADD would fail now: {why}", reason)

    # --- helpers ---------------------------------------------------------------------------------

    def _allocation(self, held: Allocation) -> AllocationResult:
        eni = self._ds.eni(held.eni_id)
        return AllocationResult(
            ipv4=held.address,
            prefix_len=32,
            gateway=self._settings.gateway,
            eni_id=held.eni_id,
            device_number=eni.device_number if eni else 0,
            route_table=eni.route_table if eni else 0,
            container_ifname=held.key.ifname,
            mtu=self._settings.pod_mtu,
            netns=held.netns,
        )

    @staticmethod
    def _expired(req: Request, received_at: float, now: float) -> bool:
        return req.deadline_ms > 0 and (now - received_at) * 1000.0 > req.deadline_ms

    @staticmethod
    def _too_late(req: Request, what: str) -> Response:
        return Response.failure(ErrorKind.TRY_AGAIN, f"the request's deadline of {req.deadline_ms} ms passed "
                                f"before ipamd could start the {what}; nothing was changed")
