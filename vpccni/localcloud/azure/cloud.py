"""LocalAzure: the ARM-faithful local Azure in one object — an https ARM endpoint and one IMDS per VM.

    with LocalAzure() as azure:
        vm = azure.add_vm("Standard_D4s_v5")           # a VM with one NIC, a managed identity and an IMDS
        client = azure.network_client()                 # real azure-mgmt-network, trusting the local CA
        azure.set_role(vm, RoleDefinition.from_json(json.load(open("iam/vpccni-azure-role.json"))))

Resources are made directly in the state (ARM's control plane for VNets and VMs is not what is being
emulated); everything the provider does goes through HTTP. A VM's managed identity is a principal of the
local RBAC with the Owner role on the resource group unless the test gives it another role.
"""

from __future__ import annotations

import ipaddress
import random
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from vpccni.cloud.azure.vm_sizes import require as require_size
from vpccni.localcloud.azure.imds import AzureImdsServer, Document, TokenIssuer, instance_document
from vpccni.localcloud.azure.model import (
    ArmLimits,
    ArmState,
    IpConfig,
    NicState,
    SubnetState,
    VmState,
    VnetState,
)
from vpccni.localcloud.azure.model import new_etag as _etag
from vpccni.localcloud.azure.policy import AzureLatency, arm_throttle_config
from vpccni.localcloud.azure.rbac import OWNER_ROLE, Principal, Rbac, RoleDefinition
from vpccni.localcloud.azure.server import ArmServer
from vpccni.localcloud.azure.service import ArmService
from vpccni.localcloud.azure.tls import make_tls_files
from vpccni.localcloud.ec2.control import ControlPlane
from vpccni.localcloud.ec2.counters import CallCounters
from vpccni.localcloud.ec2.faults import FaultInjector
from vpccni.localcloud.ec2.latency import LatencyProfile
from vpccni.localcloud.ec2.throttle import ThrottleConfig, Throttler

DEFAULT_RESOURCE_GROUP = "vpccni-rg"
DEFAULT_VNET_CIDR = "10.224.0.0/12"
DEFAULT_SUBNET_CIDR = "10.224.0.0/20"
_MICROSOFT_OUI = (0x00, 0x0D, 0x3A)


@dataclass(frozen=True)
class AzureVm:
    """One emulated VM, as a test addresses it."""

    name: str
    size: str
    resource_group: str
    location: str
    vm_id: str
    resource_id: str
    nic_ids: tuple[str, ...]  # primary first
    subnet_id: str
    primary_ip: str
    mac: str  # ARM's form
    imds_endpoint: str
    principal_id: str
    client_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class LocalAzure:
    """The local Azure. Context manager; ``start()``/``stop()`` also work."""

    def __init__(
        self,
        *,
        location: str = "westeurope",
        profile: str | LatencyProfile = "fast",
        seed: int = 0,
        throttle: ThrottleConfig | None = None,
        limits: ArmLimits | None = None,
    ) -> None:
        self._rng = random.Random(seed)
        self.subscription_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.tenant_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.location = location
        self.state = ArmState(self.subscription_id, limits)
        self.rbac = Rbac(self.subscription_id, self.tenant_id)
        self.throttler = Throttler(throttle or arm_throttle_config())
        self.faults = FaultInjector(seed)
        self.latency = AzureLatency(profile)
        self.counters = CallCounters()
        self._workdir = tempfile.TemporaryDirectory(prefix="localazure-")
        self.tls = make_tls_files(Path(self._workdir.name))
        self._stopping = threading.Event()
        self.service = ArmService(
            state=self.state,
            rbac=self.rbac,
            throttler=self.throttler,
            faults=self.faults,
            latency=self.latency,
            counters=self.counters,
            sleep=self._pause,
        )
        control = ControlPlane(
            throttler=self.throttler,
            faults=self.faults,
            latency=self.latency,
            counters=self.counters,
            account_id=self.subscription_id,
            region=location,
        )
        self.server = ArmServer(self.service, control, self.tls)
        self.admin = self.rbac.create_principal([(OWNER_ROLE, f"/subscriptions/{self.subscription_id}")])
        self._vms: dict[str, AzureVm] = {}
        self._imds: dict[str, AzureImdsServer] = {}
        self._imds_sources: dict[str, tuple[Document, TokenIssuer]] = {}
        self._extra_imds: list[AzureImdsServer] = []
        self._principals: dict[str, Principal] = {}
        self._started = False

    def _pause(self, seconds: float) -> bool:
        return self._stopping.wait(seconds) if seconds > 0 else self._stopping.is_set()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalAzure:
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        self._stopping.set()
        for imds in [*self._extra_imds, *self._imds.values()]:
            imds.stop()
        self._imds.clear()
        self._extra_imds.clear()
        self.server.stop()
        self._workdir.cleanup()
        self._started = False

    def __enter__(self) -> LocalAzure:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- clients -----------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The ARM endpoint, ``https://127.0.0.1:<port>`` (pass it as the SDK's ``base_url``)."""
        return self.server.endpoint

    @property
    def ca_file(self) -> Path:
        """The local CA's certificate: the SDK's ``connection_verify``, in tests only."""
        return self.tls.ca_file

    def token_for(self, principal: Principal, resource: str = "https://management.azure.com/") -> str:
        return self.rbac.issue_token(principal, resource)[0]

    def credential(self, principal: Principal | None = None) -> Any:
        """An azure-core token credential for ``principal`` (default: the subscription's Owner)."""
        from vpccni.localcloud.azure.credential import StaticTokenCredential

        return StaticTokenCredential(
            lambda resource: self.rbac.issue_token(principal or self.admin, resource)
        )

    def network_client(self, credential: Any = None, **client_options: Any) -> Any:
        """azure-mgmt-network's client bound to this endpoint, trusting the local CA, SDK retries off."""
        from azure.mgmt.network import NetworkManagementClient

        options: dict[str, Any] = {
            "retry_total": 0,
            "connection_verify": str(self.ca_file),
            "polling_interval": 0.05,
            **client_options,
        }
        return NetworkManagementClient(
            credential or self.credential(), self.subscription_id, base_url=self.endpoint, **options
        )

    # --- networks and VMs --------------------------------------------------------------------------

    def _rg_id(self, resource_group: str) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"

    def create_subnet(
        self,
        cidr: str,
        *,
        name: str = "nodes",
        vnet_name: str = "vpccni-vnet",
        vnet_cidr: str = DEFAULT_VNET_CIDR,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
    ) -> str:
        """A subnet (and its VNet, on first use); returns the subnet's resource id."""
        with self.service.lock:
            key = f"{resource_group}/{vnet_name}".lower()
            vnet = self.state.vnets.get(key)
            if vnet is None:
                vnet_id = (
                    f"{self._rg_id(resource_group)}/providers/Microsoft.Network/virtualNetworks/{vnet_name}"
                )
                vnet = VnetState(
                    vnet_id, vnet_name, resource_group, self.location, ipaddress.IPv4Network(vnet_cidr)
                )
                self.state.vnets[key] = vnet
            prefix = ipaddress.IPv4Network(cidr)
            if not prefix.subnet_of(vnet.prefix):
                raise ValueError(f"subnet {cidr} is not inside the virtual network's {vnet.prefix}")
            subnet = SubnetState(f"{vnet.id}/subnets/{name}", name, key, prefix)
            vnet.subnets[name.lower()] = subnet
            return subnet.id

    def default_subnet(self) -> str:
        with self.service.lock:
            existing = self.state.vnets.get(f"{DEFAULT_RESOURCE_GROUP}/vpccni-vnet")
            if existing and "nodes" in existing.subnets:
                return existing.subnets["nodes"].id
        return self.create_subnet(DEFAULT_SUBNET_CIDR)

    def _mac(self) -> str:
        octets = (*_MICROSOFT_OUI, *(self._rng.randrange(256) for _ in range(3)))
        return "-".join(f"{o:02X}" for o in octets)

    def add_vm(
        self,
        size: str = "Standard_D4s_v5",
        *,
        nics: int = 1,
        subnet_id: str | None = None,
        name: str | None = None,
        resource_group: str = DEFAULT_RESOURCE_GROUP,
        role: RoleDefinition | None = None,
        application_security_groups: tuple[str, ...] = (),
    ) -> AzureVm:
        """A running VM of ``size`` booted with ``nics`` NICs (each with one primary IP configuration), a
        system-assigned identity (Owner of the resource group, or ``role`` there) and its own IMDS.
        ``application_security_groups``: ASG ids its NICs' configurations are members of."""
        limits = require_size(size)
        if not 1 <= nics <= limits.max_nics:
            raise ValueError(f"{limits.name} boots with 1..{limits.max_nics} NICs, got {nics}")
        subnet_id = subnet_id or self.default_subnet()
        name = name or f"aks-nodepool1-{self._rng.randrange(10**8):08d}-vm{len(self._vms)}"
        vm_id = f"{self._rg_id(resource_group)}/providers/Microsoft.Compute/virtualMachines/{name}"
        with self.service.lock:
            subnet = self.state.subnet(subnet_id)
            nic_ids = []
            for index in range(nics):
                nic_name = f"{name}-nic-{index}"
                nic_id = (
                    f"{self._rg_id(resource_group)}/providers/Microsoft.Network/networkInterfaces/{nic_name}"
                )
                address = next(iter(subnet.free_addresses()), None)
                if address is None:
                    raise ValueError(f"subnet {subnet_id} has no free address for {nic_name}")
                subnet.used[address] = f"{nic_id}/ipConfigurations/ipconfig1"
                self.state.nics[nic_id.lower()] = NicState(
                    nic_id,
                    nic_name,
                    resource_group,
                    self.location,
                    self._mac(),
                    _etag(),
                    [IpConfig("ipconfig1", address, subnet.id, True, asg_ids=application_security_groups)],
                    vm_id=vm_id,
                    primary=index == 0,
                )
                nic_ids.append(nic_id)
            vm = VmState(vm_id, name, resource_group, self.location, limits.name, str(uuid.uuid4()), nic_ids)
            self.state.vms[vm_id.lower()] = vm
            primary = self.state.nic(nic_ids[0])
        identity = self.rbac.create_principal([(role or OWNER_ROLE, self._rg_id(resource_group))])
        imds = AzureImdsServer(
            name,
            lambda: self._document(vm_id),
            lambda resource: (*self.rbac.issue_token(identity, resource), identity.client_id),
        )
        self._imds[name] = imds.start()
        self._imds_sources[name] = (imds.document, imds.issue)
        found = AzureVm(
            name,
            limits.name,
            resource_group,
            self.location,
            vm.vm_id,
            vm_id,
            tuple(nic_ids),
            subnet.id,
            primary.ip_configs[0].private_ip,
            primary.mac,
            imds.endpoint,
            identity.object_id,
            identity.client_id,
        )
        self._vms[name] = found
        self._principals[name] = identity
        return found

    def principal(self, vm: AzureVm) -> Principal:
        """The VM's managed identity."""
        return self._principals[vm.name]

    def set_role(self, vm: AzureVm, role: RoleDefinition, scope: str | None = None) -> None:
        """Give the VM's identity ``role`` (only) at ``scope`` (default: the subscription)."""
        self.rbac.replace_roles(
            self.principal(vm), [(role, scope or f"/subscriptions/{self.subscription_id}")]
        )

    def imds(self, vm: AzureVm) -> AzureImdsServer:
        return self._imds[vm.name]

    def serve_imds(self, vm: AzureVm, sock: socket.socket) -> AzureImdsServer:
        """Serve ``vm``'s IMDS (same document, same identity) also on ``sock``, already bound — e.g.
        169.254.169.254:80 inside the VM's network namespace."""
        document, issue = self._imds_sources[vm.name]
        extra = AzureImdsServer(vm.name, document, issue, sock=sock).start()
        self._extra_imds.append(extra)
        return extra

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` (with the action) after every NIC write ARM applied."""
        self.service.listeners.append(listener)

    def vms(self) -> list[AzureVm]:
        return list(self._vms.values())

    def _document(self, vm_id: str) -> dict[str, Any]:
        with self.service.lock:
            vm = self.state.vms[vm_id.lower()]
            interfaces = []
            for nic_id in vm.nic_ids:
                nic = self.state.nic(nic_id)
                subnet = self.state.subnet(nic.ip_configs[0].subnet_id)
                ordered = sorted(nic.ip_configs, key=lambda c: not c.primary)
                interfaces.append((nic.mac, [c.private_ip for c in ordered], str(subnet.prefix)))
        return instance_document(
            subscription_id=self.subscription_id,
            resource_group=vm.resource_group,
            vm_name=vm.name,
            vm_id=vm.vm_id,
            vm_size=vm.size,
            location=vm.location,
            zone=vm.zone,
            interfaces=interfaces,
        )

    def nic_addresses(self, nic_id: str) -> list[str]:
        """Every address on a NIC, primary first (the emulator's own view, for assertions)."""
        with self.service.lock:
            nic = self.state.nic(nic_id)
            return [c.private_ip for c in sorted(nic.ip_configs, key=lambda c: not c.primary)]

    def describe(self) -> dict[str, Any]:
        """What ``vpccni localcloud up --cloud azure --json`` prints."""
        return {
            "cloud": "azure",
            "arm_endpoint": self.endpoint,
            "ca_file": str(self.ca_file),
            "subscription_id": self.subscription_id,
            "tenant_id": self.tenant_id,
            "location": self.location,
            "vms": [vm.to_dict() for vm in self._vms.values()],
        }
