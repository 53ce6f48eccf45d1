"""ipamd's Kubernetes integration: its Node, the node's ENIConfig, the startup taint, Events, pod IPs.

ipamd is one asyncio process and calls this synchronous API from worker threads
(``asyncio.to_thread``). Every method sends a handful of requests, each bounded by the client timeout
(:mod:`ipamd.k8s.client`), so no call can hang the daemon; an unreachable API server is a
:class:`~vpccni.errors.KubernetesUnavailable` (retryable), never a crash. What to do with a failure is
the caller's decision, with one exception: Events are best effort (a lost Event must not stop the pool
loop), so :meth:`K8sNodeAgent.report_event` logs and returns False instead of raising.

Writes that replace a list or compare a value are read-modify-write with the object's
``resourceVersion`` as a precondition in the merge patch; the API server answers 409 if anyone wrote in
between, and we re-read and try again (aws #2808: never clobber taints other controllers set). Writes
that set a single key (a pod annotation on ADD) are plain merge patches.

The decisions themselves (ENIConfig lookup order, taint edits, unschedulable, Event de-duplication) are
pure functions in :mod:`ipamd.k8s.model` and :mod:`ipamd.k8s.events`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client as k8s

from ipamd.k8s.client import DEFAULT_TIMEOUT, KubeApi, load_configuration, new_api_client, own_pod_namespace
from ipamd.k8s.events import (
    EventCorrelator,
    EventKey,
    EventTarget,
    Write,
    count_patch,
    event_body,
    new_event_name,
)
from ipamd.k8s.model import (
    POD_IPS_ANNOTATION,
    STARTUP_TAINT,
    EniConfigSpec,
    KubeNode,
    RawObject,
    eni_config_spec,
    pod_ip_annotation,
    select_eni_config,
    with_taint,
    without_taint,
)
from vpccni.config.settings import Settings
from vpccni.errors import (
    ConfigError,
    ConfigProblem,
    EniConfigMissing,
    KubernetesConflict,
    KubernetesError,
    KubernetesRejected,
)
from vpccni.wire.protocol import NoIpReason

log = logging.getLogger(__name__)

T = TypeVar("T")

REASON_MISSING_IAM = "MissingIAMPermissions"  # aws-node's reason, so existing alerts keep matching
REASON_ENI_CONFIG_MISSING = "MissingENIConfig"
REASON_POOL_CANNOT_GROW = "PoolCannotGrow"
REASON_NETWORK_READY = "NetworkReady"
CONFLICT_ATTEMPTS = 5


class K8sNodeAgent:
    """This node as ipamd sees it through the Kubernetes API. Thread-safe."""

    def __init__(self, api_client: k8s.ApiClient, settings: Settings, *,
                 pod_namespace: str = "kube-system", pod_uid: str = "",
                 timeout: float = DEFAULT_TIMEOUT, event_min_interval: float = 60.0,
                 conflict_attempts: int = CONFLICT_ATTEMPTS,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 owns_client: bool = False) -> None:
        """``settings`` supplies MY_NODE_NAME, MY_POD_NAME and the feature switches. ``pod_namespace``
        and ``pod_uid`` locate ipamd's own pod for Events (with the uid, ``kubectl describe pod`` lists
        them too). ``event_min_interval`` spaces writes of one repeated Event; ``clock`` (monotonic) and
        ``wall_clock`` (Event timestamps) are injectable for tests. ``owns_client``: close() closes it."""
        self.node_name = _require_node_name(settings)
        self.settings = settings
        self.api = KubeApi(api_client, timeout=timeout)
        self.conflict_attempts = conflict_attempts
        self._owns_client = owns_client
        self._clock = clock
        self._wall_clock = wall_clock
        self._correlator = EventCorrelator(min_interval=event_min_interval)
        self._events_lock = threading.Lock()
        self.event_targets: tuple[EventTarget, ...] = (EventTarget.node(self.node_name),) + (
            (EventTarget.pod(pod_namespace, settings.pod_name, pod_uid),) if settings.pod_name else ())

    @classmethod
    def from_settings(cls, settings: Settings, *, kubeconfig: str | None = None,
                      **kwargs: Any) -> K8sNodeAgent:
        """In-cluster (or ``kubeconfig``) credentials, CLUSTER_ENDPOINT as the URL if set."""
        _require_node_name(settings)
        cfg = load_configuration(cluster_endpoint=settings.cluster_endpoint, kubeconfig=kubeconfig)
        kwargs.setdefault("pod_namespace", own_pod_namespace())
        kwargs.setdefault("pod_uid", settings.pod_uid or "")
        return cls(new_api_client(cfg), settings, owns_client=True, **kwargs)

    def close(self) -> None:
        if self._owns_client:
            self.api.api_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> K8sNodeAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- node facts ------------------------------------------------------------------------------

    def kube_node(self) -> KubeNode:
        """Labels, annotations, taints, cordon state and ``status.capacity.pods`` of this node."""
        return KubeNode.from_object(self.api.get_node(self.node_name))

    def eni_config(self) -> EniConfigSpec | None:
        """The node's ENIConfig with custom networking on; None with it off.

        A missing ENIConfig (or one without a subnet) raises EniConfigMissing and leaves a Warning Event.
        """
        if not self.settings.custom_network_cfg:
            return None
        facts = self.kube_node()
        choice = select_eni_config(facts.labels, facts.annotations,
                                   label_key=self.settings.eni_config_label_def,
                                   annotation_key=self.settings.eni_config_annotation_def)
        found: RawObject | None = None
        if choice.name:
            try:
                found = self.api.get_eni_config(choice.name)
            except KubernetesRejected as exc:
                if exc.status != 404:
                    raise
        try:
            return eni_config_spec(self.node_name, choice, found)
        except EniConfigMissing as missing:
            self.report_event(REASON_ENI_CONFIG_MISSING, str(missing), warning=True)
            raise

    # --- startup taint -----------------------------------------------------------------------------

    def ensure_startup_taint(self) -> bool:
        """Put the startup taint on the node (True if this call added it)."""
        return self._edit_taints(lambda taints: with_taint(taints, STARTUP_TAINT))

    def remove_startup_taint(self) -> bool:
        """Take the startup taint off (True if this call removed it) and say so in a Normal Event."""
        removed = self._edit_taints(lambda taints: without_taint(taints, STARTUP_TAINT))
        if removed:
            self.report_event(REASON_NETWORK_READY, (
                f"the pod IP pool can serve pods: removed the startup taint {STARTUP_TAINT}"), warning=False)
        return removed

    def _edit_taints(self, edit: Callable[[Sequence[RawObject]], list[RawObject] | None]) -> bool:
        def attempt() -> bool:
            node = self.api.get_node(self.node_name)
            taints = edit((node.get("spec") or {}).get("taints") or [])
            if taints is None:
                return False
            # null, not [], when the last taint goes: merge patch then deletes the field, as kubectl does.
            self.api.patch_node(self.node_name, _precondition(node, {"spec": {"taints": taints or None}}))
            return True

        return self._retry_conflicts(f"edit the taints of node {self.node_name}", attempt)

    def _retry_conflicts(self, what: str, attempt: Callable[[], T]) -> T:
        last: KubernetesConflict | None = None
        for _ in range(self.conflict_attempts):
            try:
                return attempt()
            except KubernetesConflict as conflict:
                log.info("%s: concurrent write, re-reading (%s)", what, conflict.message)
                last = conflict
        assert last is not None
        raise KubernetesConflict(last.operation, last.status, (
            f"{what}: still conflicting after {self.conflict_attempts} attempts: {last.message}"))

    # --- events ----------------------------------------------------------------------------------

    def report_event(self, reason: str, message: str, *, warning: bool) -> bool:
        """One Event on the Node (and on ipamd's pod when MY_POD_NAME is set), de-duplicated.

        Best effort: returns False, and logs, if an Event could not be delivered.
        """
        kind = "Warning" if warning else "Normal"
        delivered = [self._deliver(EventKey(target, kind, reason, message)) for target in self.event_targets]
        return all(delivered)

    def missing_iam_permission(self, action: str) -> bool:
        """aws-node's Warning on UnauthorizedOperation, naming the EC2 action the node role lacks."""
        api_action = action if action.startswith("ec2:") else f"ec2:{action}"
        return self.report_event(REASON_MISSING_IAM, (
            f"Unauthorized operation: failed to call {api_action} due to missing permissions. Grant "
            f"{api_action} to the node's IAM role (vpccni's policy: iam/ in the vpccni repository); until "
            f"then the pool cannot grow (reason {NoIpReason.UNAUTHORIZED.value})"), warning=True)

    def report_no_ip(self, reason: NoIpReason, detail: str) -> bool:
        """Why the pool cannot grow (subnet full, ENI limit, ...), as a Warning Event."""
        message = f"the pod IP pool cannot grow (reason {reason.value}): {detail}"
        return self.report_event(REASON_POOL_CANNOT_GROW, message, warning=True)

    def _deliver(self, key: EventKey) -> bool:
        namespace = key.target.event_namespace
        with self._events_lock:  # the correlator's memory must see creates and patches in order
            now = self._clock()
            decision = self._correlator.observe(key, now)
            if decision.write is Write.SKIP:
                return True
            stamp = self._wall_clock()
            try:
                if decision.write is Write.PATCH and decision.event_name is not None:
                    try:
                        patch = count_patch(decision.count, stamp)
                        self.api.patch_event(namespace, decision.event_name, patch)
                    except KubernetesRejected as exc:
                        if exc.status != 404:
                            raise
                        self._correlator.lost(key)  # expired by the Event TTL: start a new one
                    else:
                        self._correlator.written(key, decision.event_name, now)
                        return True
                name = new_event_name(key.target)
                self.api.create_event(namespace, event_body(key, name, decision.count, stamp, self.node_name))
                self._correlator.written(key, name, now)
                return True
            except KubernetesError as exc:
                log.warning("Event %s %r about %s %s not delivered: %s",
                            key.type, key.reason, key.target.kind, key.target.name, exc)
                return False

    # --- pod IP annotation (ANNOTATE_POD_IP) -------------------------------------------------------

    def annotate_pod_ip(self, namespace: str, name: str, ip: str) -> bool:
        """Set ``vpc.amazonaws.com/pod-ips`` on ADD. No-op (False) when ANNOTATE_POD_IP is off or the
        pod is gone."""
        if not self.settings.annotate_pod_ip:
            return False
        try:
            self.api.patch_pod(namespace, name, {"metadata": {"annotations": {POD_IPS_ANNOTATION: ip}}})
        except KubernetesRejected as exc:
            if exc.status != 404:
                raise
            return False
        return True

    def clear_pod_ip(self, namespace: str, name: str, ip: str) -> bool:
        """On DEL, blank the annotation only if it still holds ``ip`` (as aws-node), so a DEL that races
        a newer ADD of the same pod never erases the new address. True if this call cleared it."""
        if not self.settings.annotate_pod_ip:
            return False

        def attempt() -> bool:
            try:
                pod = self.api.get_pod(namespace, name)
                if pod_ip_annotation(pod) != ip:
                    return False
                blank = {"metadata": {"annotations": {POD_IPS_ANNOTATION: ""}}}
                self.api.patch_pod(namespace, name, _precondition(pod, blank))
            except KubernetesRejected as exc:
                if exc.status != 404:
                    raise
                return False
            return True

        return self._retry_conflicts(f"clear the IP annotation of pod {namespace}/{name}", attempt)


def _precondition(current: RawObject, patch: dict[str, Any]) -> dict[str, Any]:
    """``patch`` that the API server applies only if the object still has the resourceVersion we read."""
    version = (current.get("metadata") or {}).get("resourceVersion")
    if version:
        patch.setdefault("metadata", {})["resourceVersion"] = version
    return patch


def _require_node_name(settings: Settings) -> str:
    if not settings.node_name:
        raise ConfigError([ConfigProblem("MY_NODE_NAME", "", "this node's Kubernetes name (downward API "
                                                             "spec.nodeName)")])
    return settings.node_name
