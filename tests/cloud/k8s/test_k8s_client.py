"""How ipamd builds its Kubernetes client, and how every failure of the API server reaches the daemon:
as a typed vpccni error, within the call's timeout, never a hang or a crash."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ipamd.k8s.client import KubeApi, load_configuration, new_api_client, own_pod_namespace
from ipamd.k8s.integration import K8sNodeAgent
from tests.kube import (
    KubeCluster,
    kube_fixture,  # noqa: F401  (the kube fixture)
)
from vpccni.config.settings import Settings
from vpccni.errors import (
    ConfigError,
    KubernetesConflict,
    KubernetesError,
    KubernetesRejected,
    KubernetesUnavailable,
    PermanentError,
    RetryableError,
)

NODE = "n1"
IN_CLUSTER_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def service_account(tmp_path: Path, namespace: str = "vpccni-system") -> Path:
    (tmp_path / "token").write_text("t0ken")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (tmp_path / "namespace").write_text(namespace)
    return tmp_path


# --- construction --------------------------------------------------------------------------------


def test_cluster_endpoint_alone_reaches_the_emulator(kube: KubeCluster) -> None:
    kube.create_node(NODE, capacity_pods=17)
    with K8sNodeAgent.from_settings(Settings(node_name=NODE, cluster_endpoint=kube.url)) as agent:
        assert agent.kube_node().max_pods == 17


def test_kubeconfig_file(kube: KubeCluster, tmp_path: Path) -> None:
    kube.create_node(NODE, capacity_pods=17)
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    with K8sNodeAgent.from_settings(Settings(node_name=NODE), kubeconfig=str(kubeconfig)) as agent:
        assert agent.kube_node().max_pods == 17


def test_cluster_endpoint_overrides_the_kubeconfig_server(kube: KubeCluster, tmp_path: Path) -> None:
    kube.create_node(NODE)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kube.write_kubeconfig(kubeconfig).read_text().replace(kube.url, "http://192.0.2.1:1"))
    settings = Settings(node_name=NODE, cluster_endpoint=kube.url)
    with K8sNodeAgent.from_settings(settings, kubeconfig=str(kubeconfig)) as agent:
        assert agent.kube_node().name == NODE


def test_in_cluster_service_account(tmp_path: Path) -> None:
    cfg = load_configuration(cluster_endpoint=None, service_account_dir=service_account(tmp_path),
                             environ=IN_CLUSTER_ENV)
    assert cfg.host == "https://10.96.0.1:443"
    assert cfg.get_api_key_with_prefix("BearerToken") == "bearer t0ken"
    assert cfg.retries == 0


def test_cluster_endpoint_survives_the_token_refresh(tmp_path: Path) -> None:
    cfg = load_configuration(cluster_endpoint="https://api.example.internal:6443/",
                             service_account_dir=service_account(tmp_path), environ=IN_CLUSTER_ENV)
    assert cfg.host == "https://api.example.internal:6443"
    # Reading the key runs the in-cluster refresh hook, which resets host to the service address.
    assert cfg.get_api_key_with_prefix("BearerToken") == "bearer t0ken"
    assert cfg.host == "https://api.example.internal:6443"


def test_no_configuration_at_all_names_cluster_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_configuration(cluster_endpoint=None, service_account_dir=tmp_path, environ={})
    assert [p.variable for p in caught.value.problems] == ["CLUSTER_ENDPOINT"]
    assert str(tmp_path) in str(caught.value)


def test_unreadable_kubeconfig_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    with pytest.raises(ConfigError, match="kubeconfig"):
        load_configuration(cluster_endpoint=None, kubeconfig=str(bad))


def test_node_name_is_required() -> None:
    with pytest.raises(ConfigError) as caught:
        K8sNodeAgent.from_settings(Settings(cluster_endpoint="http://127.0.0.1:1"))
    assert [p.variable for p in caught.value.problems] == ["MY_NODE_NAME"]


def test_pod_namespace_from_the_service_account(tmp_path: Path) -> None:
    assert own_pod_namespace(service_account(tmp_path)) == "vpccni-system"
    assert own_pod_namespace(tmp_path / "absent") == "kube-system"


# --- the API server down or failing --------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def black_hole() -> Iterator[str]:
    """A server whose kernel accepts connections that nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def agent_at(url: str, **settings: object) -> K8sNodeAgent:
    cfg = load_configuration(cluster_endpoint=url, service_account_dir=Path("/nonexistent"), environ={})
    return K8sNodeAgent(new_api_client(cfg), Settings(node_name=NODE, **settings),  # type: ignore[arg-type]
                        timeout=0.3, owns_client=True)


@pytest.mark.timeout(30)
def test_refused_connection_is_retryable() -> None:
    with agent_at(f"http://127.0.0.1:{closed_port()}") as agent, \
            pytest.raises(KubernetesUnavailable) as caught:
        agent.kube_node()
    assert isinstance(caught.value, RetryableError)
    assert caught.value.status is None
    assert f"get nodes/{NODE}" in str(caught.value)


@pytest.mark.timeout(30)
def test_silent_server_times_out_instead_of_hanging() -> None:
    with black_hole() as url, agent_at(url, custom_network_cfg=True, annotate_pod_ip=True) as agent:
        for call in (agent.kube_node, agent.ensure_startup_taint, agent.remove_startup_taint,
                     agent.eni_config, lambda: agent.annotate_pod_ip("ns", "p", "10.0.0.1"),
                     lambda: agent.clear_pod_ip("ns", "p", "10.0.0.1")):
            with pytest.raises(KubernetesUnavailable, match="unreachable"):
                call()
        # Events are best effort: reported as not delivered, never raised into the pool loop.
        assert agent.report_event("R", "m", warning=True) is False
        assert agent.missing_iam_permission("CreateNetworkInterface") is False


class _FixedStatus(BaseHTTPRequestHandler):
    status = 200
    body = b"{}"

    def _answer(self) -> None:
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        body: bytes = self.server.body  # type: ignore[attr-defined]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PATCH = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def answering(status: int, body: bytes) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FixedStatus)
    server.status = status  # type: ignore[attr-defined]
    server.body = body  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def status_body(code: int, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                       "message": message}).encode()


@pytest.mark.parametrize(("status", "error", "kind"), [
    (503, KubernetesUnavailable, RetryableError),
    (500, KubernetesUnavailable, RetryableError),
    (429, KubernetesUnavailable, RetryableError),
    (409, KubernetesConflict, RetryableError),
    (403, KubernetesRejected, PermanentError),
    (404, KubernetesRejected, PermanentError),
    (422, KubernetesRejected, PermanentError),
])
def test_http_failures_map_onto_the_error_tree(status: int, error: type, kind: type) -> None:
    message = f'nodes "{NODE}" is forbidden: the answer was {status}'
    with answering(status, status_body(status, message)) as url:
        api = KubeApi(new_api_client(load_configuration(cluster_endpoint=url, environ={},
                                                        service_account_dir=Path("/nonexistent"))))
        with pytest.raises(error) as caught:
            api.get_node(NODE)
        api.api_client.close()  # type: ignore[no-untyped-call]
    failure = caught.value
    assert isinstance(failure, kind) and isinstance(failure, KubernetesError)
    assert failure.status == status
    assert failure.message == message  # the API server's own words, not a traceback


def test_a_body_that_is_not_json_is_retryable() -> None:
    with answering(200, b"<html>proxy error</html>") as url, agent_at(url) as agent, \
            pytest.raises(KubernetesUnavailable, match="non-JSON"):
        agent.kube_node()
