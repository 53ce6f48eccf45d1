"""The Azure implementation of :class:`~vpccni.cloud.base.CloudProvider` over azure-mgmt-network.

Pod addresses are secondary IP configurations on the NICs the VM booted with. ARM changes a NIC only by
a PUT of the whole resource (a long-running operation the SDK polls), so every change is
read-modify-write, as cilium's Azure IPAM does it (``AssignPrivateIpAddressesVM`` in cilium/cilium
pkg/azure/api/api.go: GET the NIC, append N configurations copying the first one's subnet and
application security groups, PUT, poll):

* ``assign_addresses(nic, n)``: ONE GET and ONE PUT adding ``n`` Dynamic configurations (a growth step is
  one write, whatever ``n``; Azure CNS grows in batches the same way). Their names (``vpccni-<hex>``) are
  made once per logical call and act as an idempotency token: a retry after a lost answer finds them on
  the NIC and returns their addresses instead of adding ``n`` more.
* ``unassign_addresses(nic, addresses)``: ONE PUT without those configurations; none left = done.
* Writes carry ``If-Match: <etag of the GET>``; ARM answers 412 when another writer got there first, and
  the provider reads again and redoes its change (``conflict_attempts`` times; then CloudConflict).
  Writes to one NIC are serialised inside the provider, so its own threads never conflict.
* 429 waits out ``Retry-After`` and halves the budget's rate (:mod:`vpccni.cloud.retry`); 5xx and
  timeouts are retried there too. A NIC write that outlives ``lro_timeout_s`` is a CloudTimeout.

What Azure cannot do: NICs cannot be created for pods, attached or detached while the VM runs (that needs
the VM deallocated), and VM NICs take no delegated prefixes. Those methods raise
:class:`~vpccni.errors.CloudUnsupported`; the capability flags below tell ipamd not to ask.
``describe_leaked_interfaces`` is empty (vpccni never creates a NIC on Azure, so none can leak).
A long-running operation's polls go through the SDK, not the budget: the PUT's token covers them.
"""

from __future__ import annotations

import functools
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vpccni.cloud.azure.errors import map_error
from vpccni.cloud.azure.parse import (
    parse_nic,
    parse_subnet,
    parse_vm,
    primary_config,
    split_resource_id,
    vm_nic_ids,
)
from vpccni.cloud.azure.settings import AzureSettings, make_network_client
from vpccni.cloud.azure.vm_sizes import IP_CONFIGS_PER_NIC, instance_type_info, require
from vpccni.cloud.base import CloudProvider, InstanceInfo, NetworkInterface, Subnet
from vpccni.cloud.budget import ApiBudget
from vpccni.cloud.observe import CallObserver, InFlightCalls
from vpccni.cloud.retry import CallRunner, RetrySettings
from vpccni.errors import (
    AddressLimitExceeded,
    CloudConflict,
    CloudInvalidRequest,
    CloudNotFound,
    CloudTimeout,
    CloudUnsupported,
)

GET_NIC = "GetNetworkInterface"
PUT_NIC = "PutNetworkInterface"
GET_SUBNET = "GetSubnet"
GET_VM = "GetVirtualMachine"
GET_VNET = "GetVirtualNetwork"
VNET_KIND = "Microsoft.Network/virtualNetworks"
NIC_KIND = "Microsoft.Network/networkInterfaces"
VM_KIND = "Microsoft.Compute/virtualMachines"
COMPUTE_API_VERSION = "2024-07-01"
CONFIG_PREFIX = "vpccni-"


def _unsupported(action: str, what: str) -> CloudUnsupported:
    return CloudUnsupported(action, "NotSupportedOnAzure", what)


class AzureProvider:
    """ARM behind the :class:`~vpccni.cloud.base.CloudProvider` interface. Thread-safe."""

    can_attach_interfaces = False
    """NICs are fixed while the VM runs: the pool grows by IP configurations on existing NICs only."""
    supports_prefixes = False
    """No delegated prefixes on a VM NIC."""
    address_writes_are_batched = True
    """One write adds or removes any number of addresses: grow and shrink in batches, not one by one."""

    def __init__(
        self,
        client: Any,
        settings: AzureSettings,
        runner: CallRunner | None = None,
        *,
        config_name: Callable[[], str] = lambda: CONFIG_PREFIX + uuid.uuid4().hex[:12],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self.settings = settings
        self.runner = runner or CallRunner(map_error=map_error)
        self._config_name = config_name
        self._sleep = sleep
        self._locks_guard = threading.Lock()
        self._nic_locks: dict[str, threading.Lock] = {}
        self._vm_nics: dict[str, list[str]] = {}  # a running VM's NICs never change

    @classmethod
    def from_settings(
        cls,
        settings: AzureSettings,
        *,
        credential: Any = None,
        retry: RetrySettings | None = None,
        budget: ApiBudget | None = None,
        observer: CallObserver | None = None,
        in_flight: InFlightCalls | None = None,
    ) -> AzureProvider:
        runner = CallRunner(retry=retry, budget=budget, observer=observer, map_error=map_error,
                            in_flight=in_flight)
        return cls(make_network_client(settings, credential), settings, runner)

    # --- reads -------------------------------------------------------------------------------------

    def _get_nic(self, nic_id: str) -> Any:
        group, name = split_resource_id(nic_id, NIC_KIND)
        return self.runner.run(GET_NIC, lambda: self._client.network_interfaces.get(group, name))

    def _get_vm(self, instance_id: str) -> Mapping[str, Any]:
        from azure.core.rest import HttpRequest

        vm_id = self._vm_id(instance_id)

        def request() -> Mapping[str, Any]:
            response = self._client.send_request(
                HttpRequest("GET", vm_id, params={"api-version": COMPUTE_API_VERSION})
            )
            response.raise_for_status()
            document: Mapping[str, Any] = response.json()
            return document

        vm = self.runner.run(GET_VM, request)
        self._vm_nics[vm_id.lower()] = vm_nic_ids(vm)
        return vm

    def _vm_id(self, instance_id: str) -> str:
        """A VM's resource id; a bare name is looked up in the settings' resource group."""
        if instance_id.startswith("/"):
            split_resource_id(instance_id, VM_KIND)
            return instance_id
        return (
            f"/subscriptions/{self.settings.subscription_id}/resourceGroups/{self.settings.resource_group}"
            f"/providers/{VM_KIND}/{instance_id}"
        )

    def _device_index(self, nic: Any) -> int | None:
        vm_id = nic.virtual_machine.id.lower() if nic.virtual_machine is not None else ""
        known = [n.lower() for n in self._vm_nics.get(vm_id, ())]
        return known.index(str(nic.id).lower()) if str(nic.id).lower() in known else None

    def describe_instance(self, instance_id: str) -> InstanceInfo:
        vm = self._get_vm(instance_id)
        nic_ids = vm_nic_ids(vm)
        if not nic_ids:
            raise CloudInvalidRequest(GET_VM, "NoNetworkInterface", f"VM {instance_id} lists no NIC")
        primary = parse_nic(self._get_nic(nic_ids[0]), device_index=0)
        return parse_vm(vm, primary, nic_ids)

    def describe_instance_type(self, instance_type: str) -> Mapping[str, object]:
        return instance_type_info(require(instance_type))

    def describe_instance_interfaces(self, instance_id: str) -> list[NetworkInterface]:
        nic_ids = vm_nic_ids(self._get_vm(instance_id))
        return [parse_nic(self._get_nic(nic_id), device_index=index) for index, nic_id in enumerate(nic_ids)]

    def describe_interfaces(self, interface_ids: Sequence[str]) -> list[NetworkInterface]:
        found = []
        for nic_id in dict.fromkeys(interface_ids):
            try:
                nic = self._get_nic(nic_id)
            except CloudNotFound:
                continue
            found.append(parse_nic(nic, device_index=self._device_index(nic)))
        return found

    def describe_leaked_interfaces(
        self, *, vpc_id: str, owner_tag_key: str, required_tags: Mapping[str, str] | None = None
    ) -> list[NetworkInterface]:
        return []

    def describe_subnets(
        self,
        *,
        vpc_id: str | None = None,
        availability_zone: str | None = None,
        subnet_ids: Sequence[str] | None = None,
    ) -> list[Subnet]:
        if subnet_ids is None:
            raise _unsupported("ListSubnets", "subnet discovery: a node's NICs and their subnets are fixed")
        found = []
        for subnet_id in dict.fromkeys(subnet_ids):
            parts = subnet_id.strip("/").split("/")
            if len(parts) != 10:
                raise CloudInvalidRequest(GET_SUBNET, "InvalidResourceId", f"not a subnet id: {subnet_id!r}")
            group, vnet, name = parts[3], parts[7], parts[9]
            try:
                raw = self.runner.run(
                    GET_SUBNET, functools.partial(self._client.subnets.get, group, vnet, name)
                )
            except CloudNotFound:
                continue
            found.append(parse_subnet(raw, availability_zone or ""))
        return sorted(found, key=lambda s: (-s.available_address_count, s.subnet_id))

    def virtual_network_prefixes(self, vnet_id: str) -> list[str]:
        """The IPv4 address prefixes of a virtual network (one ARM read): what the node must not SNAT.
        Azure IMDS names a NIC's subnet only, not its virtual network's address space."""
        parts = vnet_id.strip("/").split("/")
        if len(parts) != 8 or f"{parts[5]}/{parts[6]}".lower() != VNET_KIND.lower():
            raise CloudInvalidRequest(GET_VNET, "InvalidResourceId", f"not a virtual network id: {vnet_id!r}")
        read = functools.partial(self._client.virtual_networks.get, parts[3], parts[7])
        vnet = self.runner.run(GET_VNET, read)
        space = vnet.address_space.address_prefixes if vnet.address_space is not None else None
        return [str(prefix) for prefix in space or () if ":" not in str(prefix)]

    # --- NIC writes ----------------------------------------------------------------------------------

    def _lock_for(self, nic_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._nic_locks.setdefault(nic_id.lower(), threading.Lock())

    def _put(self, nic_id: str, nic: Any) -> Any:
        group, name = split_resource_id(nic_id, NIC_KIND)
        poller = self._client.network_interfaces.begin_create_or_update(
            group,
            name,
            nic,
            headers={"If-Match": nic.etag},
            polling_interval=self.settings.lro_poll_interval_s,
        )
        result = poller.result(timeout=self.settings.lro_timeout_s)
        if not poller.done():
            raise CloudTimeout(
                PUT_NIC, "OperationTimedOut", f"writing {name} took more than {self.settings.lro_timeout_s}s"
            )
        return result

    def _rewrite(self, nic_id: str, change: Callable[[Any], bool]) -> Any:
        """Read the NIC, let ``change`` edit it (False: nothing to do), write it under If-Match; on 412 read
        and change again. Returns the NIC as last read or written."""
        with self._lock_for(nic_id):
            conflict: CloudConflict | None = None
            for attempt in range(self.settings.conflict_attempts):
                if attempt:
                    self._sleep(random.uniform(0, 0.1 * 2**attempt))  # let the other writer finish
                nic = self._get_nic(nic_id)
                if not change(nic):
                    return nic
                try:
                    return self.runner.run(
                        PUT_NIC, functools.partial(self._put, nic_id, nic), give_up_on=(CloudConflict,)
                    )
                except CloudConflict as lost:
                    conflict = lost
            assert conflict is not None
            raise conflict

    def assign_addresses(self, interface_id: str, count: int) -> list[str]:
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        from azure.mgmt.network.models import NetworkInterfaceIPConfiguration as IpConfiguration
        from azure.mgmt.network.models import NetworkInterfaceIPConfigurationPropertiesFormat as IpProperties
        from azure.mgmt.network.models import Subnet as SubnetRef

        names = [self._config_name() for _ in range(count)]
        wanted = {n.lower() for n in names}

        def add(nic: Any) -> bool:
            configs = list(nic.ip_configurations or ())
            present = {c.name.lower() for c in configs}
            if wanted <= present:
                return False  # a lost answer's write went through: nothing to add
            if len(configs) + count > IP_CONFIGS_PER_NIC:
                raise AddressLimitExceeded(
                    PUT_NIC,
                    "PrivateIPAddressLimitExceeded",
                    f"{nic.name} has {len(configs)} IP configurations; {count} more "
                    f"exceed {IP_CONFIGS_PER_NIC} per NIC",
                )
            template = primary_config(nic)
            for name in names:
                configs.append(
                    IpConfiguration(
                        name=name,
                        properties=IpProperties(
                            subnet=SubnetRef(id=template.subnet.id),
                            private_ip_allocation_method="Dynamic",
                            private_ip_address_version="IPv4",
                            application_security_groups=template.application_security_groups,
                        ),
                    )
                )
            nic.ip_configurations = configs
            return True

        nic = self._rewrite(interface_id, add)
        return [str(c.private_ip_address) for c in nic.ip_configurations if c.name.lower() in wanted]

    def unassign_addresses(self, interface_id: str, addresses: Sequence[str]) -> None:
        dropping = set(addresses)
        if not dropping:
            return

        def remove(nic: Any) -> bool:
            primary = primary_config(nic)
            if primary is not None and primary.private_ip_address in dropping:
                raise CloudInvalidRequest(
                    PUT_NIC,
                    "CannotDeletePrimaryIpConfiguration",
                    f"{primary.private_ip_address} is {nic.name}'s primary address",
                )
            kept = [c for c in nic.ip_configurations if c.private_ip_address not in dropping]
            if len(kept) == len(nic.ip_configurations):
                return False  # already gone
            nic.ip_configurations = kept
            return True

        self._rewrite(interface_id, remove)

    def create_tags(self, resource_ids: Sequence[str], tags: Mapping[str, str]) -> None:
        if not tags:
            return
        for resource_id in resource_ids:
            split_resource_id(resource_id, NIC_KIND)  # only NICs carry vpccni's tags on Azure

            def merge(nic: Any) -> bool:
                if all((nic.tags or {}).get(k) == v for k, v in tags.items()):
                    return False
                nic.tags = {**(nic.tags or {}), **tags}
                return True

            self._rewrite(resource_id, merge)

    # --- what Azure does not do ------------------------------------------------------------------------

    def create_interface(
        self,
        *,
        subnet_id: str,
        security_group_ids: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        secondary_address_count: int = 0,
        prefix_count: int = 0,
    ) -> NetworkInterface:
        raise _unsupported(
            "CreateNetworkInterface", "a running VM's NICs are fixed; grow with IP configurations"
        )

    def attach_interface(
        self, interface_id: str, instance_id: str, device_index: int, network_card_index: int = 0
    ) -> str:
        raise _unsupported("AttachNetworkInterface", "attaching a NIC needs the VM deallocated")

    def set_delete_on_termination(self, interface_id: str, attachment_id: str, enabled: bool = True) -> None:
        raise _unsupported("ModifyNetworkInterfaceAttribute", "a VM's NICs follow the VM's own delete option")

    def detach_interface(self, attachment_id: str, *, force: bool = False) -> bool:
        raise _unsupported("DetachNetworkInterface", "detaching a NIC needs the VM deallocated")

    def delete_interface(self, interface_id: str) -> bool:
        raise _unsupported("DeleteNetworkInterface", "vpccni never creates, so never deletes, a NIC on Azure")

    def assign_prefixes(self, interface_id: str, count: int) -> list[str]:
        raise _unsupported("AssignPrefixes", "Azure VM NICs take no delegated prefixes")

    def unassign_prefixes(self, interface_id: str, prefixes: Sequence[str]) -> None:
        raise _unsupported("UnassignPrefixes", "Azure VM NICs take no delegated prefixes")


if TYPE_CHECKING:
    # mypy proves here that AzureProvider implements the whole CloudProvider protocol.
    def _implements_protocol(provider: AzureProvider) -> CloudProvider:
        return provider
