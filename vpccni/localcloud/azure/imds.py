"""One VM's Azure Instance Metadata Service: the instance document and the managed-identity token.

Rules as Azure IMDS documents them ("Azure Instance Metadata Service", Azure VM docs; "How to use managed
identities for Azure resources on an Azure VM to acquire an access token"):

- ``GET /metadata/instance?api-version=...`` with header ``Metadata: true``: the JSON instance document,
  ``compute`` (subscriptionId, resourceGroupName, name, vmId, vmSize, location, zone, resourceId,
  osType) and ``network.interface[]`` (``macAddress`` as 12 upper-case hex digits, ``ipv4.ipAddress[]``
  with ``privateIpAddress``, primary first, and ``ipv4.subnet[]`` with ``address`` and ``prefix``);
- ``GET /metadata/identity/oauth2/token?api-version=...&resource=...`` with ``Metadata: true``: the VM's
  managed-identity token (``access_token``, ``expires_in``, ``expires_on``, ``resource``,
  ``token_type``, ``client_id``), issued by the local Azure's RBAC so ARM accepts it;
- without ``Metadata: true``, with ``X-Forwarded-For``, or without ``api-version``: 400.

The document is built on every request from the live ARM state, so an address added by a NIC write
shows at once. The server normally binds 127.0.0.1:0; it can also serve an already-bound socket (a node's
network namespace, where 169.254.169.254:80 has to be bound inside the namespace by its owner).
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

log = logging.getLogger(__name__)

INSTANCE_PATH = "/metadata/instance"
TOKEN_PATH = "/metadata/identity/oauth2/token"

Document = Callable[[], dict[str, Any]]
TokenIssuer = Callable[[str], tuple[str, int, str]]  # resource -> (token, lifetime s, client id)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _ImdsHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 30
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        log.debug("local Azure IMDS: " + format, *args)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.server.stopped.is_set():
            self.close_connection = True
            return
        path, _, query = self.path.partition("?")
        params = {k: v[0] for k, v in parse_qs(query).items()}
        if path.rstrip("/") not in (INSTANCE_PATH, TOKEN_PATH):
            self._reply(404, {"error": "Not found"})
            return
        if self.headers.get("X-Forwarded-For") is not None:
            self._reply(400, {"error": "Bad request. X-Forwarded-For header is not allowed"})
            return
        if (self.headers.get("Metadata") or "").lower() != "true":
            self._reply(400, {"error": "Bad request. Required metadata header not specified"})
            return
        if "api-version" not in params:
            self._reply(
                400,
                {
                    "error": "Bad request. api-version was not specified in the request",
                    "newest-versions": ["2023-07-01"],
                },
            )
            return
        if path.rstrip("/") == INSTANCE_PATH:
            self._reply(200, self.server.document())
            return
        resource = params.get("resource")
        if not resource:
            self._reply(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Required query variable 'resource' is missing",
                },
            )
            return
        token, lifetime, client_id = self.server.issue(resource)
        now = int(time.time())
        self._reply(
            200,
            {
                "access_token": token,
                "client_id": client_id,
                "expires_in": str(lifetime),
                "expires_on": str(now + lifetime),
                "ext_expires_in": str(lifetime),
                "not_before": str(now),
                "resource": resource,
                "token_type": "Bearer",
            },
        )


class _ImdsHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], document: Document, issue: TokenIssuer, bind_and_activate: bool = True
    ) -> None:
        super().__init__(address, _Handler, bind_and_activate=bind_and_activate)
        self.document = document
        self.issue = issue
        self.stopped = threading.Event()


class AzureImdsServer:
    """Serves one VM's IMDS. ``sock``: an already-bound listening socket to serve instead of 127.0.0.1:0."""

    def __init__(
        self, vm_name: str, document: Document, issue: TokenIssuer, sock: socket.socket | None = None
    ) -> None:
        self.vm_name = vm_name
        if sock is None:
            self._server = _ImdsHttpServer(("127.0.0.1", 0), document, issue)
        else:
            self._server = _ImdsHttpServer(sock.getsockname()[:2], document, issue, bind_and_activate=False)
            self._server.socket.close()
            self._server.socket = sock
            self._server.server_activate()
        self.document, self.issue = document, issue
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"localazure-imds-{vm_name}",
            daemon=True,
        )

    def start(self) -> AzureImdsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.stopped.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def instance_document(
    *,
    subscription_id: str,
    resource_group: str,
    vm_name: str,
    vm_id: str,
    vm_size: str,
    location: str,
    zone: str,
    interfaces: list[tuple[str, list[str], str]],
) -> dict[str, Any]:
    """IMDS's document for one VM; ``interfaces``: (ARM MAC, addresses primary first, subnet CIDR)."""
    network = []
    for mac, addresses, cidr in interfaces:
        subnet = ipaddress.ip_network(cidr)
        network.append(
            {
                "ipv4": {
                    "ipAddress": [{"privateIpAddress": a, "publicIpAddress": ""} for a in addresses],
                    "subnet": [{"address": str(subnet.network_address), "prefix": str(subnet.prefixlen)}],
                },
                "ipv6": {"ipAddress": []},
                "macAddress": mac.replace("-", "").replace(":", "").upper(),
            }
        )
    resource_id = (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.Compute/virtualMachines/{vm_name}"
    )
    return {
        "compute": {
            "azEnvironment": "AzurePublicCloud",
            "location": location,
            "name": vm_name,
            "osType": "Linux",
            "resourceGroupName": resource_group,
            "resourceId": resource_id,
            "subscriptionId": subscription_id,
            "vmId": vm_id,
            "vmSize": vm_size,
            "zone": zone,
        },
        "network": {"interface": network},
    }
