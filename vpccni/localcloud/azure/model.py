"""The local Azure's resources and the rules ARM's network resource provider applies to a NIC write.

State: virtual networks with subnets, NICs with their IP configurations, VMs with the NICs they booted
with. Resource names are case-insensitive in ARM, so every registry is keyed by the lower-cased name.

What a whole-NIC PUT does here (:meth:`ArmState.put_nic`), as ARM does it:

* ``If-Match`` must equal the NIC's current etag, else 412 ``PreconditionFailed``; every accepted write
  gives the NIC a new etag (optimistic concurrency; the ARM REST guidelines' conditional requests).
* a NIC whose previous write is still running answers 429 ``RetryableErrorDueToAnotherOperation`` (the
  network resource provider's answer for a resource locked by another operation; "Troubleshoot API
  throttling errors", Azure VM docs);
* every IP configuration needs a subnet, and all of one NIC's must use the same subnet
  (``IpConfigurationsOnSameNicCannotUseDifferentSubnets``, the code cilium meets in
  cilium/cilium pull request 36379); exactly one is primary, and the primary cannot be removed;
* a configuration kept by name keeps its address; a new Dynamic one gets the lowest free address of the
  subnet (Azure assigns "the next available" address, "Private IP addresses", Azure virtual network docs);
  a new Static one must be free (400 ``PrivateIPAddressInUse``) and inside the subnet;
* Azure reserves five addresses of every subnet: the network address, .1 (gateway), .2 and .3 (DNS) and
  the broadcast address ("Are there any restrictions on using IP addresses within these subnets?",
  Azure virtual network FAQ); too few free addresses answer 400 ``SubnetIsFull`` with ARM's message
  ("Subnet X with address prefix P does not have enough capacity for N IP addresses.", as quoted in
  MicrosoftDocs/azure-docs issue 88211);
* limits ("Azure subscription and service limits", networking): 256 private IP configurations per NIC
  and per VM (the VM's NICs together), 65,536 per virtual network. ARM's exact code for these is not
  published; :data:`LIMIT_CODE` is ours, the provider maps it and its siblings to AddressLimitExceeded.

NICs cannot be attached to or detached from a running VM, so a VM's NIC list never changes here.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

LIMIT_CODE = "PrivateIPAddressLimitExceeded"
SUBNET_FULL_CODE = "SubnetIsFull"
IN_USE_CODE = "PrivateIPAddressInUse"
RESERVED_PER_SUBNET = 5


class ArmError(Exception):
    """An ARM error answer: HTTP ``status`` and the ``{"error": {"code", "message"}}`` body's fields."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: int | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
        super().__init__(f"{status} {code}: {message}")


@dataclass(frozen=True)
class ArmLimits:
    """The limits a NIC write is checked against (smaller values make them testable)."""

    ip_configs_per_nic: int = 256
    ip_configs_per_vm: int = 256
    ip_configs_per_vnet: int = 65_536


@dataclass
class IpConfig:
    name: str
    private_ip: str
    subnet_id: str
    primary: bool
    allocation: str = "Dynamic"  # "Dynamic" | "Static"
    asg_ids: tuple[str, ...] = ()


@dataclass
class SubnetState:
    id: str
    name: str
    vnet_key: str
    prefix: ipaddress.IPv4Network
    used: dict[str, str] = field(default_factory=dict)  # address -> the IP configuration id holding it

    @property
    def capacity(self) -> int:
        return max(self.prefix.num_addresses - RESERVED_PER_SUBNET, 0)

    def free_addresses(self) -> Iterable[str]:
        hosts = list(self.prefix)[4:-1]  # the first four and the last are Azure's
        return (str(a) for a in hosts if str(a) not in self.used)


@dataclass
class VnetState:
    id: str
    name: str
    resource_group: str
    location: str
    prefix: ipaddress.IPv4Network
    subnets: dict[str, SubnetState] = field(default_factory=dict)


@dataclass
class NicState:
    id: str
    name: str
    resource_group: str
    location: str
    mac: str  # ARM's form, 00-0D-3A-12-34-56
    etag: str
    ip_configs: list[IpConfig]
    vm_id: str | None = None
    primary: bool = True
    tags: dict[str, str] = field(default_factory=dict)
    provisioning_state: str = "Succeeded"
    resource_guid: str = field(default_factory=lambda: str(uuid.uuid4()))
    busy_until: float = 0.0  # a write's operation runs until then (monotonic seconds)


@dataclass
class VmState:
    id: str
    name: str
    resource_group: str
    location: str
    size: str
    vm_id: str  # the VM's unique id (compute.vmId)
    nic_ids: list[str]  # primary first
    zone: str = "1"


def new_etag() -> str:
    return f'W/"{uuid.uuid4()}"'


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()


@dataclass(frozen=True)
class WantedConfig:
    """One IP configuration as a PUT body names it."""

    name: str
    subnet_id: str
    primary: bool | None
    private_ip: str | None
    allocation: str
    asg_ids: tuple[str, ...]


class ArmState:
    """Every resource of one subscription. Not thread-safe: the server holds its lock around each call."""

    def __init__(self, subscription_id: str, limits: ArmLimits | None = None) -> None:
        self.subscription_id = subscription_id
        self.limits = limits or ArmLimits()
        self.vnets: dict[str, VnetState] = {}
        self.nics: dict[str, NicState] = {}  # by lower-cased resource id
        self.vms: dict[str, VmState] = {}

    # --- lookups -----------------------------------------------------------------------------------

    def subnet(self, subnet_id: str) -> SubnetState:
        parts = subnet_id.strip("/").split("/")
        if len(parts) != 10 or not _same(parts[8], "subnets"):
            raise ArmError(400, "InvalidResourceReference", f"Resource {subnet_id} referenced is invalid.")
        vnet = self.vnets.get(f"{parts[3]}/{parts[7]}".lower())
        found = vnet.subnets.get(parts[9].lower()) if vnet else None
        if found is None:
            raise ArmError(
                400, "InvalidResourceReference", f"Resource {subnet_id} referenced by resource was not found."
            )
        return found

    def nic(self, nic_id: str) -> NicState:
        found = self.nics.get(nic_id.lower())
        if found is None:
            name = nic_id.rsplit("/", 1)[-1]
            raise ArmError(404, "NotFound", f"Resource {name} not found.")
        return found

    def vm_of(self, nic: NicState) -> VmState | None:
        return self.vms.get(nic.vm_id.lower()) if nic.vm_id else None

    def _vnet_config_count(self, vnet_key: str) -> int:
        vnet = next(v for k, v in self.vnets.items() if k == vnet_key)
        return sum(len(s.used) for s in vnet.subnets.values())

    # --- the NIC write -----------------------------------------------------------------------------

    def put_nic(
        self,
        nic: NicState,
        wanted: list[WantedConfig],
        tags: dict[str, str] | None,
        if_match: str | None,
        now: float,
    ) -> None:
        """Apply a whole-NIC PUT to an existing NIC, or raise the ArmError ARM would answer."""
        if if_match is not None and if_match != "*" and if_match != nic.etag:
            raise ArmError(
                412,
                "PreconditionFailed",
                f"Precondition failed: the etag {if_match} is not the current etag of {nic.name}.",
            )
        if nic.busy_until > now:
            raise ArmError(
                429,
                "RetryableErrorDueToAnotherOperation",
                f"Operation on {nic.id} cannot be performed because another operation is in "
                "progress on it. Retry after the other operation has completed.",
                retry_after_s=max(1, int(nic.busy_until - now + 0.999)),
            )
        self._check_shape(nic, wanted)
        subnet = self.subnet(wanted[0].subnet_id)
        old = {c.name.lower(): c for c in nic.ip_configs}
        added = [w for w in wanted if w.name.lower() not in old]
        dropped = [c for key, c in old.items() if key not in {w.name.lower() for w in wanted}]
        if any(c.primary for c in dropped):
            raise ArmError(
                400,
                "CannotDeletePrimaryIpConfiguration",
                f"The primary IP configuration of {nic.name} cannot be deleted.",
            )
        self._check_limits(nic, len(wanted), subnet, len(added) - len(dropped))
        released = {c.private_ip for c in dropped}
        statics = [w for w in added if w.private_ip]
        for w in statics:
            address = ipaddress.ip_address(w.private_ip or "")
            if address not in subnet.prefix:
                raise ArmError(
                    400,
                    "PrivateIPAddressNotInSubnet",
                    f"Private IP address {address} is not in the range of subnet {subnet.id}.",
                )
            if str(address) in subnet.used and str(address) not in released:
                raise ArmError(
                    400,
                    IN_USE_CODE,
                    f"IP configuration {nic.id}/ipConfigurations/{w.name} "
                    f"is using the private IP address {address} which is already allocated to "
                    f"resource {subnet.used[str(address)]}.",
                )
        dynamic = len(added) - len(statics)
        free = [a for a in subnet.free_addresses() if a not in {w.private_ip for w in statics}]
        free = sorted(set(free) | released, key=lambda a: int(ipaddress.ip_address(a)))
        if dynamic > len(free):
            raise ArmError(
                400,
                SUBNET_FULL_CODE,
                f"Subnet {subnet.name} with address prefix "
                f"{subnet.prefix} does not have enough capacity for {dynamic} IP addresses.",
            )
        for c in dropped:
            subnet.used.pop(c.private_ip, None)
        addresses = iter(a for a in free if a not in subnet.used)
        kept = []
        for w in wanted:
            current = old.get(w.name.lower())
            if current is not None:
                current.asg_ids = w.asg_ids
                kept.append(current)
                continue
            assigned = w.private_ip or next(addresses)
            subnet.used[assigned] = f"{nic.id}/ipConfigurations/{w.name}"
            kept.append(
                IpConfig(
                    w.name, assigned, subnet.id, False, "Static" if w.private_ip else "Dynamic", w.asg_ids
                )
            )
        nic.ip_configs = kept
        if tags is not None:
            nic.tags = dict(tags)
        nic.etag = new_etag()

    def _check_shape(self, nic: NicState, wanted: list[WantedConfig]) -> None:
        if not wanted:
            raise ArmError(
                400,
                "NetworkInterfaceMustHaveIpConfiguration",
                f"Network interface {nic.id} must have at least one IP configuration.",
            )
        names = [w.name.lower() for w in wanted]
        if len(set(names)) != len(names):
            raise ArmError(
                400,
                "DuplicateResourceName",
                f"Network interface {nic.name} has two IP configurations with the same name.",
            )
        for w in wanted:
            if not w.subnet_id:
                raise ArmError(
                    400,
                    "SubnetReferenceRequired",
                    f"Subnet reference is required for ipconfiguration {nic.id}/ipConfigurations/{w.name}.",
                )
        if len({w.subnet_id.lower() for w in wanted}) > 1:
            raise ArmError(
                400,
                "IpConfigurationsOnSameNicCannotUseDifferentSubnets",
                f"IP configurations on network interface {nic.id} use different subnets.",
            )
        old_primary = next((c.name.lower() for c in nic.ip_configs if c.primary), None)
        primaries = [w for w in wanted if w.primary]
        if len(primaries) > 1 or (primaries and primaries[0].name.lower() != old_primary):
            raise ArmError(
                400,
                "NetworkInterfacePrimaryIpConfigurationChange",
                f"The primary IP configuration of {nic.name} cannot change in this emulator.",
            )

    def _check_limits(self, nic: NicState, configs: int, subnet: SubnetState, growth: int) -> None:
        limits = self.limits
        if configs > limits.ip_configs_per_nic:
            raise ArmError(
                400,
                LIMIT_CODE,
                f"Network interface {nic.name} would have {configs} IP "
                f"configurations; the limit is {limits.ip_configs_per_nic} per network interface.",
            )
        vm = self.vm_of(nic)
        if vm is not None and growth > 0:
            others = sum(len(self.nic(i).ip_configs) for i in vm.nic_ids if not _same(i, nic.id))
            if others + configs > limits.ip_configs_per_vm:
                raise ArmError(
                    400,
                    LIMIT_CODE,
                    f"Virtual machine {vm.name} would have {others + configs} "
                    f"IP configurations; the limit is {limits.ip_configs_per_vm} per virtual machine.",
                )
        if growth > 0 and self._vnet_config_count(subnet.vnet_key) + growth > limits.ip_configs_per_vnet:
            raise ArmError(
                400,
                LIMIT_CODE,
                f"Virtual network of subnet {subnet.name} would exceed "
                f"{limits.ip_configs_per_vnet} private IP addresses.",
            )
