"""The Azure provider meets ARM's limits and failures: every one becomes the right vpccni error, and the
retryable ones are survived (the cases of tests/cloud/aws/test_aws_provider_errors.py that apply to Azure,
plus Azure's own: 412 on a concurrent write, 429 with Retry-After, a NIC busy with another write).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.network.models import NetworkInterfaceIPConfiguration as IpConfiguration
from azure.mgmt.network.models import NetworkInterfaceIPConfigurationPropertiesFormat as IpProperties
from azure.mgmt.network.models import Subnet as SubnetRef

from vpccni.cloud.azure.errors import map_error
from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import RetrySettings
from vpccni.errors import (
    AddressLimitExceeded,
    CloudConflict,
    CloudInvalidRequest,
    CloudServerError,
    CloudTimeout,
    SubnetFull,
)
from vpccni.localcloud.ec2.throttle import MUTATING, NON_MUTATING, BucketSpec, ThrottleConfig


def _name(resource_id: str) -> str:
    return resource_id.rsplit("/", 1)[1]


def test_address_limit_per_nic(provider: AzureProvider, vm: Any, observer: InMemoryObserver) -> None:
    nic = vm.nic_ids[0]
    assert len(provider.assign_addresses(nic, 255)) == 255  # 256 with the primary, in one write
    observer.clear()
    with pytest.raises(AddressLimitExceeded):
        provider.assign_addresses(nic, 1)
    assert observer.calls() == {"GetNetworkInterface": 1}  # refused before writing


def test_the_emulator_enforces_the_nic_limit_too(azure_network_client: Any, vm: Any) -> None:
    nic = azure_network_client.network_interfaces.get(vm.resource_group, _name(vm.nic_ids[0]))
    nic.ip_configurations += [
        IpConfiguration(name=f"extra{i}", properties=IpProperties(subnet=SubnetRef(id=vm.subnet_id)))
        for i in range(256)
    ]
    with pytest.raises(HttpResponseError) as refused:
        azure_network_client.network_interfaces.begin_create_or_update(vm.resource_group, nic.name, nic)
    assert isinstance(map_error("PutNetworkInterface", refused.value), AddressLimitExceeded)


def test_address_limit_per_vm_spans_its_nics(make_provider: Any, localazure_vm: Any) -> None:
    big = localazure_vm("Standard_D8s_v5", nics=2)
    provider = make_provider(on=big)
    provider.assign_addresses(big.nic_ids[0], 200)
    provider.assign_addresses(big.nic_ids[1], 54)  # 2 primaries + 254 = the VM's 256
    with pytest.raises(AddressLimitExceeded) as refused:
        provider.assign_addresses(big.nic_ids[1], 1)
    assert "virtual machine" in refused.value.message


def test_nics_per_size(localazure: Any) -> None:
    with pytest.raises(ValueError, match="1..2 NICs"):
        localazure.add_vm("Standard_D4s_v5", nics=3)
    assert len(localazure.add_vm("Standard_D16s_v5", nics=8).nic_ids) == 8


def test_subnet_full(make_provider: Any, localazure: Any) -> None:
    small = localazure.create_subnet("10.224.16.0/28", name="small")  # 16 - 5 reserved - 1 primary = 10
    node = localazure.add_vm(subnet_id=small)
    provider = make_provider(on=node)
    with pytest.raises(SubnetFull) as refused:
        provider.assign_addresses(node.nic_ids[0], 11)
    assert refused.value.code == "SubnetIsFull"
    assert "does not have enough capacity for 11 IP addresses" in refused.value.message
    assert len(provider.assign_addresses(node.nic_ids[0], 10)) == 10


def test_an_address_in_use_is_refused(azure_network_client: Any, localazure_vm: Any, vm: Any) -> None:
    other = localazure_vm()
    nic = azure_network_client.network_interfaces.get(other.resource_group, _name(other.nic_ids[0]))
    taken = IpProperties(subnet=SubnetRef(id=vm.subnet_id), private_ip_allocation_method="Static",
                         private_ip_address=vm.primary_ip)
    nic.ip_configurations.append(IpConfiguration(name="taken", properties=taken))
    with pytest.raises(HttpResponseError) as refused:
        azure_network_client.network_interfaces.begin_create_or_update(other.resource_group, nic.name, nic)
    mapped = map_error("PutNetworkInterface", refused.value)
    assert isinstance(mapped, CloudInvalidRequest) and mapped.code == "PrivateIPAddressInUse"


def _write_behind_its_back(provider: AzureProvider, azure_network_client: Any, vm: Any, times: int) -> None:
    """After each of the provider's next ``times`` NIC reads, another writer changes the NIC (new etag)."""
    real_get = provider._get_nic
    left = [times]

    def get_then_someone_writes(nic_id: str) -> Any:
        nic = real_get(nic_id)
        if left[0] > 0:
            left[0] -= 1
            theirs = azure_network_client.network_interfaces.get(vm.resource_group, _name(nic_id))
            theirs.tags = {"writer": f"other-{left[0]}"}
            azure_network_client.network_interfaces.begin_create_or_update(
                vm.resource_group, theirs.name, theirs, headers={"If-Match": theirs.etag}).result()
        return nic

    provider._get_nic = get_then_someone_writes  # type: ignore[method-assign]


def test_a_concurrent_writer_costs_a_reread(provider: AzureProvider, vm: Any, azure_network_client: Any,
                                            observer: InMemoryObserver, localazure: Any) -> None:
    _write_behind_its_back(provider, azure_network_client, vm, times=1)
    added = provider.assign_addresses(vm.nic_ids[0], 4)
    assert observer.errors() == {("PutNetworkInterface", "PreconditionFailed"): 1}
    assert observer.calls() == {"GetNetworkInterface": 2, "PutNetworkInterface": 2}
    assert localazure.nic_addresses(vm.nic_ids[0])[1:] == added
    assert provider.describe_interfaces([vm.nic_ids[0]])[0].tags == (("writer", "other-0"),)  # theirs kept


def test_conflicts_that_never_stop_are_a_cloud_conflict(make_provider: Any, vm: Any,
                                                        azure_network_client: Any) -> None:
    provider = make_provider(conflict_attempts=3)
    _write_behind_its_back(provider, azure_network_client, vm, times=3)
    with pytest.raises(CloudConflict):
        provider.assign_addresses(vm.nic_ids[0], 1)


def test_writes_to_one_nic_are_serialised(provider: AzureProvider, vm: Any, observer: InMemoryObserver,
                                          localazure: Any) -> None:
    results: list[list[str]] = []
    threads = [threading.Thread(target=lambda: results.append(provider.assign_addresses(vm.nic_ids[0], 3)))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a for r in results for a in r) == sorted(localazure.nic_addresses(vm.nic_ids[0])[1:])
    assert len(localazure.nic_addresses(vm.nic_ids[0])) == 13
    assert observer.errors() == {}  # no 412, no busy NIC: the provider never raced itself


def test_arm_throttling_waits_out_retry_after(make_provider: Any, vm: Any, localazure: Any,
                                              observer: InMemoryObserver) -> None:
    localazure.throttler.configure(ThrottleConfig(buckets={
        MUTATING: BucketSpec(capacity=1, refill_per_s=1.0), NON_MUTATING: BucketSpec(1000, 1000),
    }))
    provider = make_provider(retry=RetrySettings(max_attempts=4, backoff_base_s=0.01, backoff_max_s=0.02))
    provider.assign_addresses(vm.nic_ids[0], 1)
    started = time.monotonic()
    provider.assign_addresses(vm.nic_ids[0], 1)  # the write bucket is empty: 429, Retry-After: 1
    assert time.monotonic() - started >= 0.95  # waited what ARM asked, not the 20 ms back-off
    assert observer.errors() == {("PutNetworkInterface", "SubscriptionRequestsThrottled"): 1}
    assert observer.throttled() == 1


@pytest.mark.parametrize("code,status", [("InternalServerError", 500), ("ServiceUnavailable", 503)])
def test_server_errors_are_retried(provider: AzureProvider, vm: Any, localazure: Any,
                                   observer: InMemoryObserver, code: str, status: int) -> None:
    localazure.faults.inject("PutNetworkInterface", code, status=status, count=2)
    assert len(provider.assign_addresses(vm.nic_ids[0], 2)) == 2
    assert observer.errors() == {("PutNetworkInterface", code): 2}


def test_permanent_errors_are_not_retried(provider: AzureProvider, vm: Any, localazure: Any,
                                          observer: InMemoryObserver) -> None:
    localazure.faults.inject("GetNetworkInterface", "InvalidRequestFormat", status=400, count=1)
    with pytest.raises(CloudInvalidRequest):
        provider.describe_interfaces([vm.nic_ids[0]])
    assert observer.calls() == {"GetNetworkInterface": 1}


def test_timeouts_are_retried(make_provider: Any, vm: Any, localazure: Any,
                              observer: InMemoryObserver) -> None:
    provider = make_provider(http_timeout_s=0.3)
    localazure.faults.inject("GetNetworkInterface", "Timeout", status=500, timeout_s=2.0, count=1)
    assert provider.describe_interfaces([vm.nic_ids[0]])[0].interface_id == vm.nic_ids[0]
    assert [code for (_, code) in observer.errors()] == ["ServiceResponseTimeoutError"]


def test_a_timeout_that_never_ends_is_a_cloud_timeout(make_provider: Any, vm: Any, localazure: Any) -> None:
    provider = make_provider(http_timeout_s=0.2, retry=RetrySettings(max_attempts=2, backoff_base_s=0.01,
                                                                     backoff_max_s=0.01))
    localazure.faults.inject("GetNetworkInterface", "Timeout", status=500, timeout_s=1.0)
    with pytest.raises(CloudTimeout):
        provider.describe_interfaces([vm.nic_ids[0]])


def test_a_write_whose_answer_was_lost_is_not_done_twice(provider: AzureProvider, vm: Any, localazure: Any,
                                                          observer: InMemoryObserver) -> None:
    localazure.faults.inject("PutNetworkInterface/answer", "InternalServerError", status=500, count=1)
    added = provider.assign_addresses(vm.nic_ids[0], 3)
    assert len(added) == 3
    assert localazure.nic_addresses(vm.nic_ids[0])[1:] == added  # three, not six
    assert ("PutNetworkInterface", "PreconditionFailed") in observer.errors()  # the retry found it written


def test_a_write_that_outlives_its_timeout_is_found_done(make_provider: Any, vm: Any,
                                                         localazure: Any) -> None:
    localazure.latency.set("NetworkInterfaceOperation", 1.0)
    provider = make_provider(lro_timeout_s=0.2)
    added = provider.assign_addresses(vm.nic_ids[0], 2)
    assert localazure.nic_addresses(vm.nic_ids[0])[1:] == added


def test_unmapped_server_answer_is_a_server_error(provider: AzureProvider, vm: Any, localazure: Any) -> None:
    localazure.faults.inject("GetNetworkInterface", "Weird", status=502)
    with pytest.raises(CloudServerError):
        provider.describe_interfaces([vm.nic_ids[0]])


def test_the_virtual_network_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from vpccni.cloud.azure.settings import AzureSettings
    from vpccni.localcloud.azure import ArmLimits, LocalAzure

    with LocalAzure(limits=ArmLimits(ip_configs_per_vnet=12)) as small:  # 65,536 on Azure
        node = small.add_vm()
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", node.imds_endpoint)
        settings = AzureSettings(small.subscription_id, node.resource_group, arm_endpoint=small.endpoint,
                                 connection_verify=str(small.ca_file), lro_poll_interval_s=0.02)
        provider = AzureProvider.from_settings(settings)
        provider.assign_addresses(node.nic_ids[0], 11)  # 12 with the primary
        with pytest.raises(AddressLimitExceeded, match="Virtual network"):
            provider.assign_addresses(node.nic_ids[0], 1)


def test_a_failed_operation_is_retried_and_found_written(provider: AzureProvider, vm: Any, localazure: Any,
                                                         observer: InMemoryObserver) -> None:
    localazure.faults.inject("NetworkInterfaceOperation", "InternalServerError", status=500, count=1)
    added = provider.assign_addresses(vm.nic_ids[0], 2)
    assert localazure.nic_addresses(vm.nic_ids[0])[1:] == added
    assert ("PutNetworkInterface", "InternalServerError") in observer.errors()
