"""The Azure provider against the local Azure through the real SDK over TLS: reads and address writes.

The contract cases of tests/cloud/aws/test_aws_provider.py where they apply to Azure (describe the instance,
its type, its interfaces, interfaces by id, tags, subnets and their free count), and what is Azure's
own: a growth step is ONE NIC write whatever its size, releasing is one write too, and what Azure cannot
do is refused as CloudUnsupported.
"""

from __future__ import annotations

from typing import Any

import pytest

from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.observe import InMemoryObserver
from vpccni.config.limits import InstanceLimits
from vpccni.errors import CloudNotFound, CloudUnsupported, UnknownInstanceType


def test_describe_instance(provider: AzureProvider, vm: Any) -> None:
    info = provider.describe_instance(vm.resource_id)
    assert info.instance_id == vm.resource_id
    assert info.instance_type == "Standard_D4s_v5"
    assert info.primary_interface_id == vm.nic_ids[0]
    assert info.subnet_id == vm.subnet_id
    assert info.vpc_id == vm.subnet_id.rsplit("/subnets/", 1)[0]
    assert info.state == "running"
    assert [s.interface_id for s in info.interfaces] == list(vm.nic_ids)
    # A bare name means a VM of the settings' resource group.
    assert provider.describe_instance(vm.name).instance_id == vm.resource_id


def test_describe_unknown_instance_is_not_found(provider: AzureProvider) -> None:
    with pytest.raises(CloudNotFound):
        provider.describe_instance("no-such-vm")


def test_describe_instance_type(provider: AzureProvider) -> None:
    limits = InstanceLimits.from_describe(provider.describe_instance_type("Standard_D8s_v5"))
    assert (limits.max_enis, limits.ipv4_per_eni, limits.supports_prefix_delegation) == (4, 256, False)
    with pytest.raises(UnknownInstanceType):
        provider.describe_instance_type("Standard_Z1_v9")


def test_instance_interfaces_start_with_the_primary(make_provider: Any, localazure_vm: Any) -> None:
    big = localazure_vm("Standard_D16s_v5", nics=3)
    provider = make_provider(on=big)
    interfaces = provider.describe_instance_interfaces(big.resource_id)
    assert [i.interface_id for i in interfaces] == list(big.nic_ids)
    assert [i.device_index for i in interfaces] == [0, 1, 2]
    assert interfaces[0].primary_address == big.primary_ip
    assert interfaces[0].mac == big.mac.replace("-", ":").lower()
    assert all(i.status == "in-use" and i.prefixes == () for i in interfaces)


def test_a_growth_step_is_one_write(provider: AzureProvider, vm: Any, localazure: Any,
                                    observer: InMemoryObserver) -> None:
    nic = vm.nic_ids[0]
    localazure.counters.reset()
    first = provider.assign_addresses(nic, 16)
    assert len(first) == len(set(first)) == 16
    assert observer.calls() == {"GetNetworkInterface": 1, "PutNetworkInterface": 1}
    # On the wire: the read, the write, one poll of its operation, ARMPolling's final read.
    counted = {action: c.calls for action, c in localazure.counters.snapshot().items()}
    assert counted == {"GetNetworkInterface": 2, "PutNetworkInterface": 1, "GetOperationStatus": 1}
    second = provider.assign_addresses(nic, 8)
    assert set(second).isdisjoint(first)
    assert localazure.nic_addresses(nic) == [vm.primary_ip, *first, *second]
    [described] = provider.describe_interfaces([nic])
    assert described.secondary_addresses == (*first, *second)


def test_release_is_one_write_and_idempotent(provider: AzureProvider, vm: Any,
                                             observer: InMemoryObserver) -> None:
    nic = vm.nic_ids[0]
    added = provider.assign_addresses(nic, 10)
    observer.clear()
    provider.unassign_addresses(nic, added[:6])
    assert observer.calls() == {"GetNetworkInterface": 1, "PutNetworkInterface": 1}
    [described] = provider.describe_interfaces([nic])
    assert described.secondary_addresses == tuple(added[6:])
    observer.clear()
    provider.unassign_addresses(nic, added[:6])  # already gone: read, nothing to write
    assert observer.calls() == {"GetNetworkInterface": 1}


def test_released_addresses_are_taken_again(provider: AzureProvider, vm: Any) -> None:
    nic = vm.nic_ids[0]
    added = provider.assign_addresses(nic, 4)
    provider.unassign_addresses(nic, added)
    assert sorted(provider.assign_addresses(nic, 4)) == sorted(added)  # lowest free first, as ARM assigns


def test_describe_interfaces_skips_missing_ids_and_keeps_order(provider: AzureProvider, localazure_vm: Any,
                                                              vm: Any) -> None:
    other = localazure_vm()
    missing = vm.nic_ids[0].rsplit("/", 1)[0] + "/no-such-nic"
    found = provider.describe_interfaces([other.nic_ids[0], missing, vm.nic_ids[0]])
    assert [i.interface_id for i in found] == [other.nic_ids[0], vm.nic_ids[0]]


def test_leaked_interfaces_are_none(provider: AzureProvider) -> None:
    found = provider.describe_leaked_interfaces(vpc_id="any", owner_tag_key="vpccni/owner")
    assert found == []


def test_create_tags(provider: AzureProvider, vm: Any, observer: InMemoryObserver) -> None:
    nic = vm.nic_ids[0]
    provider.create_tags([nic], {"cluster": "blue", "owner": "vpccni"})
    assert provider.describe_interfaces([nic])[0].tags == (("cluster", "blue"), ("owner", "vpccni"))
    observer.clear()
    provider.create_tags([nic], {"cluster": "blue"})  # already there: no write
    assert observer.calls() == {"GetNetworkInterface": 1}


def test_describe_subnets_and_free_count(provider: AzureProvider, vm: Any, localazure: Any) -> None:
    other = localazure.create_subnet("10.224.16.0/28", name="small")
    [big, small] = provider.describe_subnets(subnet_ids=[other, vm.subnet_id])
    assert (small.subnet_id, small.cidr, small.available_address_count) == (other, "10.224.16.0/28", 11)
    before = big.available_address_count
    provider.assign_addresses(vm.nic_ids[0], 5)
    [after] = provider.describe_subnets(subnet_ids=[vm.subnet_id])
    assert after.available_address_count == before - 5
    assert provider.describe_subnets(subnet_ids=[other.replace("small", "nope")]) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda p, nic: p.create_interface(subnet_id="s", security_group_ids=[], description="", tags={}),
        lambda p, nic: p.attach_interface(nic, "vm", 1),
        lambda p, nic: p.detach_interface(nic),
        lambda p, nic: p.delete_interface(nic),
        lambda p, nic: p.set_delete_on_termination(nic, nic),
        lambda p, nic: p.assign_prefixes(nic, 1),
        lambda p, nic: p.unassign_prefixes(nic, ["10.0.0.0/28"]),
        lambda p, nic: p.describe_subnets(vpc_id="v"),
    ],
)
def test_what_azure_cannot_do_is_refused_before_any_call(call: Any, provider: AzureProvider, vm: Any,
                                                          observer: InMemoryObserver) -> None:
    assert (provider.can_attach_interfaces, provider.supports_prefixes) == (False, False)
    with pytest.raises(CloudUnsupported):
        call(provider, vm.nic_ids[0])
    assert observer.records == ()
