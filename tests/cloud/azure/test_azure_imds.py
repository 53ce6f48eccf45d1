"""The Azure IMDS of a local VM, read by vpccni's client and by azure-identity's ManagedIdentityCredential.

Facts: subscription, resource group, name, size, location, the NICs with MACs and addresses (primary
first), live (an address added by a NIC write shows at once). Token: a managed-identity token for ARM
that ARM accepts. Rules: ``Metadata: true`` and ``api-version`` are required, ``X-Forwarded-For`` is
refused. The credential finds the loopback IMDS through AZURE_POD_IDENTITY_AUTHORITY_HOST (set for the
test only).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from vpccni.cloud.azure.imds import AzureImdsClient
from vpccni.errors import ImdsUnavailable


def test_the_instance_facts(localazure: Any, localazure_vm: Any, azure_network_client: Any) -> None:
    vm = localazure_vm("Standard_D8s_v5", nics=2)
    facts = AzureImdsClient(vm.imds_endpoint).instance()
    assert (facts.subscription_id, facts.resource_group, facts.name, facts.vm_size, facts.location) == (
        localazure.subscription_id, vm.resource_group, vm.name, "Standard_D8s_v5", localazure.location)
    assert facts.resource_id == vm.resource_id and facts.vm_id == vm.vm_id
    assert facts.primary_address == vm.primary_ip
    assert facts.interfaces[0].mac == vm.mac.replace("-", ":").lower()
    assert [i.subnet_cidr for i in facts.interfaces] == ["10.224.0.0/20"] * 2
    assert [len(i.addresses) for i in facts.interfaces] == [1, 1]


def test_the_facts_follow_arm_at_once(localazure: Any, vm: Any, make_provider: Any) -> None:
    added = make_provider().assign_addresses(vm.nic_ids[0], 3)
    assert AzureImdsClient(vm.imds_endpoint).instance().interfaces[0].addresses == (vm.primary_ip, *added)


def test_managed_identity_token_is_accepted_by_arm(localazure: Any, vm: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from azure.identity import ManagedIdentityCredential

    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", vm.imds_endpoint)
    credential = ManagedIdentityCredential()
    token = credential.get_token("https://management.azure.com/.default")
    assert token.token.count(".") == 2 and token.expires_on > 0
    client = localazure.network_client(credential=credential)
    nic = client.network_interfaces.get(vm.resource_group, vm.nic_ids[0].rsplit("/", 1)[1])
    assert nic.ip_configurations[0].private_ip_address == vm.primary_ip


def _get(url: str, headers: dict[str, str]) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


def test_request_rules(vm: Any) -> None:
    instance = f"{vm.imds_endpoint}/metadata/instance"
    token = f"{vm.imds_endpoint}/metadata/identity/oauth2/token?api-version=2018-02-01"
    assert _get(f"{instance}?api-version=2021-02-01", {})[0] == 400  # no Metadata header
    assert _get(instance, {"Metadata": "true"})[0] == 400  # no api-version
    proxied = {"Metadata": "true", "X-Forwarded-For": "1.2.3.4"}
    assert _get(f"{instance}?api-version=2021-02-01", proxied)[0] == 400
    status, body = _get(token, {"Metadata": "true"})
    assert (status, body["error"]) == (400, "invalid_request")  # no resource
    status, body = _get(f"{token}&resource=https://management.azure.com/", {"Metadata": "true"})
    assert status == 200 and body["token_type"] == "Bearer" and int(body["expires_in"]) > 0
    assert _get(f"{vm.imds_endpoint}/metadata/nothing?api-version=1", {"Metadata": "true"})[0] == 404


def test_an_unreachable_imds_is_imds_unavailable() -> None:
    client = AzureImdsClient("http://127.0.0.1:9", timeout_s=0.5, attempts=2, backoff_s=0.01)
    with pytest.raises(ImdsUnavailable, match="/metadata/instance"):
        client.instance()


def test_the_real_endpoint_is_refused_under_pytest() -> None:
    with pytest.raises(ValueError, match="real Azure IMDS"):
        AzureImdsClient()
