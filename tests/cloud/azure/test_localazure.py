"""The local Azure's ARM endpoint itself: request rules, ARM's headers and bodies, the long-running
operation of a NIC write, a busy NIC, throttling headers, and the control plane over https."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from vpccni.localcloud.azure.control import AzureControlClient


def _raw(localazure: Any, path: str, *, method: str = "GET", token: bool = True,
         headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, Any, Any]:
    sent = dict(headers or {})
    if token:
        sent["Authorization"] = f"Bearer {localazure.token_for(localazure.admin)}"
    request = urllib.request.Request(localazure.endpoint + path, data=body, method=method, headers=sent)
    context = ssl.create_default_context(cafile=str(localazure.ca_file))
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as answer:
            return answer.status, answer.headers, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as refused:
        return refused.code, refused.headers, json.loads(refused.read() or b"null")


def _nic_path(vm: Any, api: str = "?api-version=2024-05-01") -> str:
    return str(vm.nic_ids[0]) + api


def test_request_rules_and_error_bodies(localazure: Any, vm: Any) -> None:
    status, _, body = _raw(localazure, _nic_path(vm, ""))
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
    status, _, body = _raw(localazure, _nic_path(vm), token=False)
    assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    status, _, body = _raw(localazure, _nic_path(vm).replace(localazure.subscription_id, "0" * 8))
    assert (status, body["error"]["code"]) == (404, "SubscriptionNotFound")
    status, _, body = _raw(localazure, _nic_path(vm).replace("-nic-0", "-nic-9"))
    assert (status, body["error"]["code"]) == (404, "NotFound")
    status, _, body = _raw(localazure, "/subscriptions/x/providers/Microsoft.Storage/things?api-version=1")
    assert (status, body["error"]["code"]) == (404, "InvalidResourceType")


def test_reads_report_the_remaining_read_budget(localazure: Any, vm: Any) -> None:
    _, first, _ = _raw(localazure, _nic_path(vm))
    _, second, _ = _raw(localazure, _nic_path(vm))
    reads = "x-ms-ratelimit-remaining-subscription-reads"
    assert int(second[reads]) < int(first[reads]) <= 250  # ARM's read bucket: 250 tokens
    assert first["x-ms-request-id"] != second["x-ms-request-id"]


def test_a_nic_write_is_a_long_running_operation(localazure: Any, vm: Any, azure_network_client: Any) -> None:
    localazure.latency.set("NetworkInterfaceOperation", 0.6)
    nics = azure_network_client.network_interfaces
    nic = nics.get(vm.resource_group, vm.nic_ids[0].rsplit("/", 1)[1])
    nic.tags = {"step": "1"}
    started = time.monotonic()
    poller = nics.begin_create_or_update(vm.resource_group, nic.name, nic, polling_interval=0.05)
    assert poller.status() == "InProgress"
    during = nics.get(vm.resource_group, nic.name)
    assert during.provisioning_state == "Updating" and during.tags == {"step": "1"}
    # A second write while the first runs: the network provider's 429 for a busy resource.
    during.tags = {"step": "2"}
    with pytest.raises(HttpResponseError) as busy:
        nics.begin_create_or_update(vm.resource_group, nic.name, during)
    assert busy.value.status_code == 429 and busy.value.error is not None
    assert busy.value.error.code == "RetryableErrorDueToAnotherOperation"
    assert busy.value.response is not None
    assert busy.value.response.headers["Retry-After"] == "1"  # type: ignore[attr-defined]
    done = poller.result()
    assert time.monotonic() - started >= 0.6 and done.provisioning_state == "Succeeded"
    assert localazure.counters.snapshot()["GetOperationStatus"].calls >= 1


def test_a_stale_etag_is_412(vm: Any, azure_network_client: Any) -> None:
    nics = azure_network_client.network_interfaces
    nic = nics.get(vm.resource_group, vm.nic_ids[0].rsplit("/", 1)[1])
    stale = nic.etag
    nic.tags = {"a": "b"}
    nics.begin_create_or_update(vm.resource_group, nic.name, nic, headers={"If-Match": stale}).result()
    with pytest.raises(HttpResponseError) as refused:
        nics.begin_create_or_update(vm.resource_group, nic.name, nic, headers={"If-Match": stale})
    assert refused.value.status_code == 412


def test_the_control_plane_over_https(localazure: Any, vm: Any, azure_network_client: Any) -> None:
    control = AzureControlClient(localazure.endpoint, localazure.ca_file)
    assert control._call("GET", "")["account_id"] == localazure.subscription_id
    control.inject_fault("GetNetworkInterface", "InternalServerError", status=500, count=1)
    with pytest.raises(HttpResponseError) as failed:
        azure_network_client.network_interfaces.get(vm.resource_group, vm.nic_ids[0].rsplit("/", 1)[1])
    assert failed.value.status_code == 500 and failed.value.error is not None
    assert failed.value.error.code == "InternalServerError"
    counters = control.counters()["GetNetworkInterface"]
    assert (counters.calls, counters.errors) == (1, 1)
    control.set_latency(profile="realistic")
    assert control.set_latency()["delays_s"]["NetworkInterfaceOperation"] == 1.0
    assert set(control.throttle_state()["tokens"]) == {"mutating", "non_mutating"}
