"""A Kubernetes API server for tests: kmock's emulator on a real port, driven by the official client.

:class:`KubeCluster` runs :class:`VersionedEmulator` (kmock's stateful emulator, plus what ipamd relies
on that kmock lacks) and kmock's aiohttp server in a background thread with its own event loop. It gives

* ``url`` — for a subprocess ipamd via ``CLUSTER_ENDPOINT`` — and :meth:`KubeCluster.write_kubeconfig`;
  :meth:`KubeCluster.serve_on` serves the same API on a socket of the caller's, e.g. one created inside a
  node's network namespace, whose processes cannot reach this process's loopback;
* :meth:`KubeCluster.api_client` — an official ``kubernetes.client.ApiClient`` (or a
  :class:`RecordingApiClient` that logs each request's RBAC (group, resource, verb) and can run a hook
  before a request, e.g. a concurrent writer);
* helpers that create Nodes (labels, annotations, taints, capacity, cordon), ENIConfigs and Pods, read
  objects and Events back as plain dicts, and wait for a Node to reach a state (the startup taint gone).

What :class:`VersionedEmulator` adds to kmock 0.8: every write stamps ``metadata.resourceVersion`` (and
``uid``/``creationTimestamp`` on create), and a patch that carries a stale ``metadata.resourceVersion``
is refused with 409 Conflict — the API server's optimistic concurrency, which read-modify-write code
must be tested against. kmock's other caveats stay as they are, so the code under test must live with
them: label/field selectors and ``timeoutSeconds`` are ignored, and ``metadata.namespace`` is not filled
from the URL (a created object lacks it unless the body sets it).

Usage (or the ``kube`` fixture: ``from tests.kube import kube_fixture  # noqa: F401``)::

    with KubeCluster() as cluster:
        cluster.create_node("n1", labels={...}, taints=[...], capacity_pods=29)
        with cluster.api_client() as api_client:
            ...
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import kmock
import pytest
import yaml
from aiohttp import web
from kubernetes import client as k8s

ENI_CONFIG_GROUP = "crd.k8s.amazonaws.com"
ENI_CONFIG_VERSION = "v1alpha1"
ENI_CONFIG_RESOURCE = f"{ENI_CONFIG_GROUP}/{ENI_CONFIG_VERSION}/eniconfigs"
START_TIMEOUT = 10.0


@attrs.define(kw_only=True)
class VersionedEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with resourceVersions and 409 Conflict on a stale one (see the module docstring)."""

    _versions: Iterator[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)

    async def _handle(self, request: kmock.Request) -> Any:
        if request.resource is None or request.action not in (kmock.action.CREATE, kmock.action.UPDATE):
            return await super()._handle(request)
        # Check and write under one lock, so two patches with the same version cannot both pass.
        async with self._write_lock:
            if request.action == kmock.action.CREATE:
                self._stamp_create(request)
            else:
                self._check_and_stamp_update(request)
            return await super()._handle(request)

    def _stamp_create(self, request: kmock.Request) -> None:
        if isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = str(next(self._versions))
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def _check_and_stamp_update(self, request: kmock.Request) -> None:
        if request.resource is None or request.name is None:
            return
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # kmock answers 404 itself
        current = (self.objects[key].get("metadata") or {}).get("resourceVersion")
        version = str(next(self._versions))
        if isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            sent = meta.get("resourceVersion")
            if sent is not None and sent != current:
                plural = request.resource.plural
                raise kmock.KubernetesError(status=409, reason="Conflict", message=(
                    f'Operation cannot be fulfilled on {plural} "{request.name}": the object has been '
                    f"modified; please apply your changes to the latest version and try again"))
            meta["resourceVersion"] = version
        elif isinstance(request.data, list):  # JSON patch
            request.data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})


# --- RBAC view of requests -----------------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    """One request as RBAC sees it."""

    method: str
    path: str
    group: str
    resource: str  # with "/subresource"
    verb: str
    namespace: str | None
    name: str | None

    @property
    def permission(self) -> tuple[str, str, str]:
        return (self.group, self.resource, self.verb)

    @classmethod
    def parse(cls, method: str, url: str) -> ApiCall:
        split = urlsplit(url)
        parts = [p for p in split.path.split("/") if p]
        if parts[:1] == ["api"]:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"]:
            group, rest = parts[1], parts[3:]
        else:
            raise ValueError(f"not a resource URL: {url}")
        namespace = None
        if rest[:1] == ["namespaces"] and len(rest) > 2:
            namespace, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else None
        if len(rest) > 2:
            resource = f"{resource}/{rest[2]}"
        verb = _rbac_verb(method.upper(), named=name is not None, query=split.query)
        return cls(method.upper(), split.path, group, resource, verb, namespace, name)


def _rbac_verb(method: str, *, named: bool, query: str) -> str:
    if method == "GET":
        return "watch" if "watch=true" in query else ("get" if named else "list")
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if named else "deletecollection"}[method]


class RecordingApiClient(k8s.ApiClient):
    """An official ApiClient that records every request and may run ``before_call`` ahead of each."""

    def __init__(self, configuration: k8s.Configuration) -> None:
        super().__init__(configuration)
        self.calls: list[ApiCall] = []
        self.before_call: Callable[[ApiCall], None] | None = None

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        call = ApiCall.parse(method, url)
        self.calls.append(call)
        if self.before_call is not None:
            self.before_call(call)
        return super().call_api(method, url, *args, **kwargs)


# --- the cluster ---------------------------------------------------------------------------------


class KubeCluster:
    """The emulator and its server on a background thread; see the module docstring."""

    def __init__(self) -> None:
        self.emulator: VersionedEmulator | None = None
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._clients: list[k8s.ApiClient] = []
        self._admin: k8s.ApiClient | None = None
        self._extra_sites: list[web.BaseRunner] = []

    def __enter__(self) -> KubeCluster:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._failure is not None:
            self.__exit__()
            raise RuntimeError(f"the Kubernetes emulator did not start: {self._failure!r}")
        self._admin = self.api_client()
        return self

    def __exit__(self, *exc: object) -> None:
        for api_client in self._clients:
            api_client.close()  # type: ignore[no-untyped-call]
        self._clients.clear()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to __enter__, which raises it in the test's thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        emulator = VersionedEmulator()
        for plural, kind in (("nodes", "Node"), ("pods", "Pod"), ("events", "Event"),
                             ("configmaps", "ConfigMap")):
            emulator.resources[f"v1/{plural}"] = kmock.ResourceInfo(kind=kind)
        emulator.resources[ENI_CONFIG_RESOURCE] = kmock.ResourceInfo(kind="ENIConfig", namespaced=False)
        async with emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = str(server.url).rstrip("/")
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            for runner in self._extra_sites:
                await runner.cleanup()

    def serve_on(self, sock: socket.socket) -> str:
        """Also serve the API on ``sock`` (bound and listening, e.g. by
        :func:`vpccni.localcloud.vpc.sockets.listening_socket` inside a node's namespace) until the
        cluster stops; the URL, valid where the socket lives."""
        assert self._loop is not None and self.emulator is not None, "the cluster is not running"
        emulator = self.emulator

        async def serve() -> None:
            runner = web.ServerRunner(web.Server(emulator))
            await runner.setup()
            self._extra_sites.append(runner)
            await web.SockSite(runner, sock).start()

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(START_TIMEOUT)
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    # --- clients -----------------------------------------------------------------------------------

    def configuration(self) -> k8s.Configuration:
        cfg = k8s.Configuration()
        cfg.host = self.url
        cfg.retries = 0
        return cfg

    def api_client(self, *, recording: bool = False) -> k8s.ApiClient:
        """A new official client for this server, closed when the cluster stops."""
        cfg = self.configuration()
        api_client = RecordingApiClient(cfg) if recording else k8s.ApiClient(cfg)
        self._clients.append(api_client)
        return api_client

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig for this server (no credentials: the emulator has no auth)."""
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "anonymous", "user": {}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "anonymous"}}],
        }))
        return path

    def request(self, method: str, path: str, body: Any = None, *,
                content_type: str = "application/json") -> dict[str, Any]:
        """One raw JSON request through the official client (no model conversion of the body)."""
        assert self._admin is not None
        headers = {"Accept": "application/json", "Content-Type": content_type}
        response = self._admin.call_api(method, self.url + path, header_params=headers, body=body,
                                        _request_timeout=START_TIMEOUT)
        data: bytes = response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status <= 299:
            raise k8s.ApiException.from_response(http_resp=response, body=data.decode(), data=None)
        obj: dict[str, Any] = json.loads(data)
        return obj

    # --- objects -----------------------------------------------------------------------------------

    def create_node(self, name: str, *, labels: Mapping[str, str] | None = None,
                    annotations: Mapping[str, str] | None = None,
                    taints: Sequence[Mapping[str, str]] = (), unschedulable: bool = False,
                    capacity_pods: int | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if taints:
            spec["taints"] = [dict(t) for t in taints]
        if unschedulable:
            spec["unschedulable"] = True
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": dict(labels or {}), "annotations": dict(annotations or {})},
            "spec": spec,
        }
        if capacity_pods is not None:
            body["status"] = {"capacity": {"pods": str(capacity_pods)}}
        return self.request("POST", "/api/v1/nodes", body)

    def node(self, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/nodes/{name}")

    def wait_for_node(self, name: str, condition: Callable[[dict[str, Any]], bool], *,
                      timeout: float = 30.0, interval: float = 0.05) -> dict[str, Any]:
        """Poll the Node until ``condition`` holds (e.g. the startup taint is gone); TimeoutError with the
        last state seen otherwise. A deadline so a broken agent fails the test instead of hanging it."""
        deadline = time.monotonic() + timeout
        while True:
            node = self.node(name)
            if condition(node):
                return node
            if time.monotonic() >= deadline:
                raise TimeoutError(f"node {name} never met the condition; last seen: {node}")
            time.sleep(interval)

    def patch_node(self, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A write by "someone else" (another controller, kubectl) as a merge patch."""
        return self.request("PATCH", f"/api/v1/nodes/{name}", dict(patch),
                            content_type="application/merge-patch+json")

    def create_eni_config(self, name: str, *, subnet: str | None,
                          security_groups: Sequence[str] = ()) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if subnet is not None:
            spec["subnet"] = subnet
        if security_groups:
            spec["securityGroups"] = list(security_groups)
        body = {"apiVersion": f"{ENI_CONFIG_GROUP}/{ENI_CONFIG_VERSION}", "kind": "ENIConfig",
                "metadata": {"name": name}, "spec": spec}
        return self.request("POST", f"/apis/{ENI_CONFIG_GROUP}/{ENI_CONFIG_VERSION}/eniconfigs", body)

    def create_pod(self, namespace: str, name: str, *, node_name: str = "",
                   annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": dict(annotations or {})},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "pause"}]},
        }
        return self.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def patch_pod(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}", dict(patch),
                            content_type="application/merge-patch+json")

    def delete_pod(self, namespace: str, name: str) -> None:
        self.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}")

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Events, optionally of one namespace, filtered here: the emulator returns every namespace's."""
        found: list[dict[str, Any]] = self.request("GET", "/api/v1/events")["items"]
        return [e for e in found if namespace is None or e["metadata"].get("namespace") == namespace]


@pytest.fixture(name="kube")
def kube_fixture() -> Iterator[KubeCluster]:
    """``kube``: a fresh emulated API server per test. Import ``kube_fixture`` into a test module."""
    with KubeCluster() as cluster:
        yield cluster
