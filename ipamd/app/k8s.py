"""ipamd's Kubernetes side (:mod:`ipamd.k8s.integration`) wired to the reconciler. On when MY_NODE_NAME is
set.

What it feeds the reconciler, through :class:`~ipamd.reconcile.context.ReconcilerHooks`:

* ``eni_target``: custom networking's ENIConfig (subnet, and its security groups or else the primary
  ENI's), read when an ENI is about to be created; a missing one raises EniConfigMissing, which the pool
  reports as the reason it cannot grow (the agent leaves a Warning Event too);
* ``node_unschedulable``: the cordon state from the last Node read (AWS_MANAGE_ENIS_NON_SCHEDULABLE);
* ``on_unauthorized``: a ``MissingIAMPermissions`` Warning Event naming the EC2 action, as aws-node.

The ``kubernetes`` root task re-reads the Node every REFRESH_S: cordon state, ``status.capacity.pods``
(max pods, unless VPCCNI_MAX_PODS overrides it), the startup taint (removed once the pool can serve an
ADD: aws #2808), and a ``PoolCannotGrow`` Warning while the pool is blocked (the agent de-duplicates).
An unreachable API server costs a log line and the next try; it never stops the pool.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ipamd.k8s.integration import K8sNodeAgent
from ipamd.k8s.model import KubeNode
from ipamd.reconcile.context import ReconcilerHooks
from ipamd.reconcile.node import EniTarget
from ipamd.reconcile.reconciler import Reconciler
from vpccni.errors import KubernetesError

log = logging.getLogger("ipamd.app.main")

REFRESH_S = 30.0


class KubernetesLink:
    def __init__(self, agent: K8sNodeAgent, primary_security_groups: tuple[str, ...]) -> None:
        self.agent = agent
        self._primary_groups = primary_security_groups
        self._unschedulable = False
        self._events: set[asyncio.Task[bool]] = set()  # fire-and-forget Event deliveries, kept referenced

    def hooks(self, dataplane: ReconcilerHooks) -> ReconcilerHooks:
        """The dataplane's ENI hooks plus ours."""
        return ReconcilerHooks(eni_target=self.eni_target, node_unschedulable=lambda: self._unschedulable,
                               on_unauthorized=self.on_unauthorized, eni_attached=dataplane.eni_attached,
                               eni_detached=dataplane.eni_detached)

    async def eni_target(self) -> EniTarget | None:
        spec = await asyncio.to_thread(self.agent.eni_config)
        if spec is None:
            return None
        return EniTarget(spec.subnet, spec.security_groups or self._primary_groups)

    def on_unauthorized(self, action: str, message: str) -> None:
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.agent.missing_iam_permission, action))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def read_node(self, reconciler: Reconciler) -> KubeNode:
        """The Node's cordon state and pod capacity, into the reconciler's inputs."""
        facts = await asyncio.to_thread(self.agent.kube_node)
        self._unschedulable = facts.unschedulable
        reconciler.set_node_capacity_pods(facts.max_pods)
        return facts

    async def first_read(self, reconciler: Reconciler) -> None:
        """Before the pre-scale pass: a cordoned node must not grow even once (AWS_MANAGE_ENIS_NON_
        SCHEDULABLE). Best effort: an unreachable API server is logged and the refresh task retries."""
        try:
            await self.read_node(reconciler)
        except KubernetesError as exc:
            log.warning("Kubernetes at start: %s (node state unknown until the next refresh)", exc)

    async def refresh(self, reconciler: Reconciler, can_serve: Callable[[], bool]) -> None:
        """One pass of the ``kubernetes`` task."""
        try:
            facts = await self.read_node(reconciler)
            if facts.has_startup_taint and can_serve():
                await asyncio.to_thread(self.agent.remove_startup_taint)
        except KubernetesError as exc:
            log.warning("Kubernetes: %s (next try in %.0fs)", exc, REFRESH_S)
            return
        blocked = reconciler.status.current
        if blocked is not None:  # best effort and de-duplicated by the agent
            await asyncio.to_thread(self.agent.report_no_ip, blocked.reason, blocked.message)

    def close(self) -> None:
        self.agent.close()
