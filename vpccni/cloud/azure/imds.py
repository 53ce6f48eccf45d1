"""Azure IMDS client: the node's facts from the Instance Metadata Service (standard library only).

One request, ``GET /metadata/instance?api-version=2021-02-01`` with ``Metadata: true`` ("Azure Instance
Metadata Service", Azure VM docs), gives everything ipamd needs to start: subscription, resource group,
VM name and resource id, size, location and zone, and each NIC's MAC with its addresses (primary first)
and subnet. IMDS does not name NIC resource ids; the provider finds them from the VM (ARM) and matches
them to these MACs. Connection failures, timeouts and 5xx are retried a few times with a short back-off;
what still fails is :class:`~vpccni.errors.ImdsUnavailable`. The endpoint is explicit: the real one,
169.254.169.254, is refused under pytest, so no test can reach a real metadata service.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from vpccni.errors import ImdsUnavailable

DEFAULT_ENDPOINT: Final = "http://169.254.169.254"
API_VERSION: Final = "2021-02-01"
INSTANCE_PATH: Final = "/metadata/instance"


@dataclass(frozen=True)
class AzureImdsInterface:
    mac: str  # Linux form, 00:0d:3a:..
    addresses: tuple[str, ...]  # primary first
    subnet_cidr: str  # e.g. 10.224.0.0/16


@dataclass(frozen=True)
class AzureInstance:
    subscription_id: str
    resource_group: str
    name: str
    resource_id: str
    vm_id: str
    vm_size: str
    location: str
    zone: str
    interfaces: tuple[AzureImdsInterface, ...]  # primary NIC first

    @property
    def primary_address(self) -> str:
        return self.interfaces[0].addresses[0] if self.interfaces and self.interfaces[0].addresses else ""


class AzureImdsClient:
    """Reads the instance document. Thread-safe (no state between calls)."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Azure IMDS endpoint must be an http(s) URL, got {endpoint!r}")
        if "PYTEST_CURRENT_TEST" in os.environ and parts.hostname == "169.254.169.254":
            raise ValueError("refusing the real Azure IMDS under pytest: pass a loopback endpoint")
        if timeout_s <= 0 or attempts < 1 or backoff_s < 0:
            raise ValueError("AzureImdsClient: timeout_s > 0, attempts >= 1, backoff_s >= 0")
        self._base = endpoint.rstrip("/")
        self._timeout_s = timeout_s
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._sleep = sleep

    def _get(self, path: str) -> Any:
        url = f"{self._base}{path}?api-version={API_VERSION}"
        request = urllib.request.Request(url, headers={"Metadata": "true"})
        last = ""
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            try:
                with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as error:
                last = f"HTTP {error.code}: {error.read(300).decode(errors='replace')}"
                if error.code < 500:
                    break
            except (OSError, ValueError) as error:  # refused, reset, timed out, not JSON
                last = f"{type(error).__name__}: {error}"
        raise ImdsUnavailable(f"Azure IMDS {path}: {last}")

    def instance(self) -> AzureInstance:
        """The VM's facts; ImdsUnavailable when IMDS does not answer or the document lacks a field."""
        document = self._get(INSTANCE_PATH)
        try:
            compute = document["compute"]
            interfaces = []
            for nic in document["network"]["interface"]:
                mac = str(nic["macAddress"]).lower()
                subnet = nic["ipv4"]["subnet"][0]
                cidr = ipaddress.ip_network(f"{subnet['address']}/{subnet['prefix']}", strict=False)
                interfaces.append(
                    AzureImdsInterface(
                        ":".join(mac[i : i + 2] for i in range(0, len(mac), 2)),
                        tuple(str(a["privateIpAddress"]) for a in nic["ipv4"]["ipAddress"]),
                        str(cidr),
                    )
                )
            return AzureInstance(
                subscription_id=str(compute["subscriptionId"]),
                resource_group=str(compute["resourceGroupName"]),
                name=str(compute["name"]),
                resource_id=str(compute.get("resourceId") or ""),
                vm_id=str(compute["vmId"]),
                vm_size=str(compute["vmSize"]),
                location=str(compute["location"]),
                zone=str(compute.get("zone") or ""),
                interfaces=tuple(interfaces),
            )
        except (KeyError, IndexError, TypeError, ValueError) as missing:
            raise ImdsUnavailable(
                f"Azure IMDS {INSTANCE_PATH}: unexpected document ({missing!r})"
            ) from missing
