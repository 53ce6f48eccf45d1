"""The Kubernetes API boundary of ipamd: how the official client is built, and every request it sends.

Client construction (:func:`load_configuration`), as aws-node's ``k8sapi.getRestConfig``: a kubeconfig
file if one is given (tests, development), else the pod's service account (in-cluster), and
``CLUSTER_ENDPOINT`` replaces the API server URL either way — so a node can reach the API server before
kube-proxy has programmed the ``kubernetes`` Service. With no credentials at all, ``CLUSTER_ENDPOINT``
alone gives an anonymous client (the local emulator). Nothing at all is a ConfigError naming
CLUSTER_ENDPOINT.

:class:`KubeApi` is the only place a request leaves ipamd. Each method is one request with a total
timeout and no urllib3 retries, so a call never takes longer than ``timeout`` however dead the server
is: the daemon's own loops decide when to try again. Failures become the vpccni error tree here and
nowhere else (:func:`api_errors`): no answer, 429 and 5xx are
:class:`~vpccni.errors.KubernetesUnavailable` (retryable), 409 is
:class:`~vpccni.errors.KubernetesConflict`, other refusals :class:`~vpccni.errors.KubernetesRejected`.

Objects travel as plain JSON dicts (``_preload_content=False``), not generated models: a
read-modify-write must send back other writers' fields untouched, and a malformed object must not raise
a model-validation error from deep inside the client.

:data:`PERMISSIONS_USED` lists the (API group, resource, verb) each method needs; a test records the
requests actually sent and checks them against this list and against the chart's ClusterRole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import urllib3
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import InClusterConfigLoader
from kubernetes.config.kube_config import load_kube_config

import vpccni
from vpccni.errors import (
    ConfigError,
    ConfigProblem,
    KubernetesConflict,
    KubernetesRejected,
    KubernetesUnavailable,
)

DEFAULT_TIMEOUT = 5.0
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
USER_AGENT = f"vpccni-ipamd/{vpccni.__version__}"
MERGE_PATCH = "application/merge-patch+json"

ENI_CONFIG_GROUP = "crd.k8s.amazonaws.com"
ENI_CONFIG_VERSION = "v1alpha1"
ENI_CONFIG_PLURAL = "eniconfigs"

# 408 and 429 ask the client to come back; 5xx is the server's own trouble.
_RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

RawObject = dict[str, Any]


class Permission(NamedTuple):
    """One RBAC rule atom: API group ("" = core), resource (with ``/subresource``), verb."""

    group: str
    resource: str
    verb: str


PERMISSIONS_USED: frozenset[Permission] = frozenset({
    Permission("", "nodes", "get"),
    Permission("", "nodes", "patch"),
    Permission(ENI_CONFIG_GROUP, ENI_CONFIG_PLURAL, "get"),
    Permission("", "events", "create"),
    Permission("", "events", "patch"),
    # Only with ANNOTATE_POD_IP, as the chart grants them.
    Permission("", "pods", "get"),
    Permission("", "pods", "patch"),
    # Only with VPCCNI_FLEET_BUDGET (the fleet's EC2 ledger), as the chart grants them.
    Permission("", "configmaps", "get"),
    Permission("", "configmaps", "create"),
    Permission("", "configmaps", "patch"),
})


# --- configuration -------------------------------------------------------------------------------


def in_cluster(service_account_dir: Path = SERVICE_ACCOUNT_DIR,
               environ: Mapping[str, str] = os.environ) -> bool:
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and (service_account_dir / "token").is_file()


def load_configuration(*, cluster_endpoint: str | None, kubeconfig: str | None = None,
                       service_account_dir: Path = SERVICE_ACCOUNT_DIR,
                       environ: Mapping[str, str] = os.environ) -> k8s.Configuration:
    """The client configuration for this node; see the module docstring for the order."""
    cfg = k8s.Configuration()
    try:
        if kubeconfig:
            load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=cfg, persist_config=False)
        elif in_cluster(service_account_dir, environ):
            loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
                token_filename=str(service_account_dir / "token"),
                cert_filename=str(service_account_dir / "ca.crt"), environ=environ)
            loader.load_and_set(cfg)  # type: ignore[no-untyped-call]
        elif not cluster_endpoint:
            raise ConfigError([ConfigProblem("CLUSTER_ENDPOINT", "", (
                f"the API server URL: ipamd is not in a pod (no service account token in "
                f"{service_account_dir}) and no kubeconfig was given"))])
    except ConfigException as exc:
        source = f"kubeconfig {kubeconfig}" if kubeconfig else f"service account in {service_account_dir}"
        raise ConfigError([ConfigProblem("CLUSTER_ENDPOINT", cluster_endpoint or "",
                                         f"a usable {source}: {exc}")]) from exc
    if cluster_endpoint:
        _pin_host(cfg, cluster_endpoint.rstrip("/"))
    # One attempt per call: the caller's loop retries, and a call's duration stays bounded by its timeout.
    cfg.retries = 0
    return cfg


def _pin_host(cfg: k8s.Configuration, host: str) -> None:
    """Set the API server URL and keep it: the in-cluster token refresh hook rewrites ``host``."""
    cfg.host = host
    refresh: Callable[[k8s.Configuration], None] | None = cfg.refresh_api_key_hook
    if refresh is None:
        return

    def refresh_keeping_host(configuration: k8s.Configuration) -> None:
        refresh(configuration)
        configuration.host = host

    # The client declares the hook's attribute as None-typed, though it calls whatever is set there.
    cfg.refresh_api_key_hook = refresh_keeping_host  # type: ignore[assignment]


def new_api_client(cfg: k8s.Configuration) -> k8s.ApiClient:
    api_client = k8s.ApiClient(cfg)
    api_client.user_agent = USER_AGENT
    return api_client


def own_pod_namespace(service_account_dir: Path = SERVICE_ACCOUNT_DIR, default: str = "kube-system") -> str:
    """The namespace ipamd's own pod runs in (from its service account), for Events about the pod."""
    try:
        return (service_account_dir / "namespace").read_text().strip() or default
    except OSError:
        return default


# --- requests ------------------------------------------------------------------------------------


@contextmanager
def api_errors(operation: str) -> Iterator[None]:
    """Map the client's and urllib3's exceptions onto the vpccni error tree (the one place that does)."""
    try:
        yield
    except k8s.ApiException as exc:
        status = int(exc.status) if exc.status else None
        message = _status_message(exc)
        if status is None or status in _RETRYABLE_STATUSES:
            raise KubernetesUnavailable(operation, status, message) from exc
        if status == 409:
            raise KubernetesConflict(operation, status, message) from exc
        raise KubernetesRejected(operation, status, message) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubernetesUnavailable(operation, None, f"API server unreachable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise KubernetesUnavailable(operation, None, f"API server answered with non-JSON: {exc}") from exc


def _status_message(exc: k8s.ApiException) -> str:
    """The ``message`` of the Status object the API server answers with, else the HTTP reason."""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        body = {}
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(exc.reason or "error")


class KubeApi:
    """Every Kubernetes request ipamd sends: one method per (resource, verb) in PERMISSIONS_USED."""

    def __init__(self, api_client: k8s.ApiClient, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self._core = k8s.CoreV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)

    def _send(self, operation: str, request: Callable[..., Any], *args: Any, **kwargs: Any) -> RawObject:
        with api_errors(operation):
            response = request(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
            try:
                data = response.data
            finally:
                response.release_conn()
            obj = json.loads(data)
        if not isinstance(obj, dict):
            raise KubernetesUnavailable(operation, None, "API server sent JSON that is not an object")
        return obj

    def get_node(self, name: str) -> RawObject:
        return self._send(f"get nodes/{name}", self._core.read_node, name)

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> RawObject:
        return self._send(f"patch nodes/{name}", self._core.patch_node, name, dict(patch),
                          _content_type=MERGE_PATCH)

    def get_eni_config(self, name: str) -> RawObject:
        return self._send(f"get {ENI_CONFIG_PLURAL}.{ENI_CONFIG_GROUP}/{name}",
                          self._custom.get_cluster_custom_object,
                          ENI_CONFIG_GROUP, ENI_CONFIG_VERSION, ENI_CONFIG_PLURAL, name)

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> RawObject:
        return self._send(f"create events in {namespace}", self._core.create_namespaced_event,
                          namespace, dict(body))

    def patch_event(self, namespace: str, name: str, patch: Mapping[str, Any]) -> RawObject:
        return self._send(f"patch events/{name} in {namespace}", self._core.patch_namespaced_event,
                          name, namespace, dict(patch), _content_type=MERGE_PATCH)

    def get_pod(self, namespace: str, name: str) -> RawObject:
        return self._send(f"get pods/{name} in {namespace}", self._core.read_namespaced_pod, name, namespace)

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> RawObject:
        return self._send(f"patch pods/{name} in {namespace}", self._core.patch_namespaced_pod,
                          name, namespace, dict(patch), _content_type=MERGE_PATCH)

    def get_config_map(self, namespace: str, name: str) -> RawObject:
        return self._send(f"get configmaps/{name} in {namespace}", self._core.read_namespaced_config_map,
                          name, namespace)

    def create_config_map(self, namespace: str, body: Mapping[str, Any]) -> RawObject:
        return self._send(f"create configmaps in {namespace}", self._core.create_namespaced_config_map,
                          namespace, dict(body))

    def patch_config_map(self, namespace: str, name: str, patch: Mapping[str, Any]) -> RawObject:
        """A merge patch; one carrying ``metadata.resourceVersion`` is refused with 409 (KubernetesConflict)
        when the object has moved on since that version: a compare-and-swap."""
        return self._send(f"patch configmaps/{name} in {namespace}", self._core.patch_namespaced_config_map,
                          name, namespace, dict(patch), _content_type=MERGE_PATCH)
