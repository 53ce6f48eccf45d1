"""The local Azure as a fabric of the emulated network (:mod:`vpccni.localcloud.vpc.fabric`): the same
dataplane as EC2's delivers each IP configuration's address to its VM and drops what a NIC does not own.

* A VM is an instance and a NIC an ENI (:func:`instance_view`): its NICs in the VM's order (device index =
  position, so the first is ``eth0``), each with its IP configurations' addresses, primary first. Azure
  delivers a NIC's secondary IP configurations to that NIC and drops its traffic from addresses that are not
  its own unless IP forwarding is enabled on it ("IP forwarding", Azure virtual network docs; the NICs here
  never enable it), which is what the router's reverse-path filter does.
* Inside the VM's namespace: its IMDS (instance document and managed-identity token) at
  169.254.169.254:80, as on a VM, and ARM over https at 127.0.0.1:<port> on the namespace's loopback (the
  local CA's certificate names 127.0.0.1).
* The fabric's MTU is 1500, an Azure virtual network's default ("Configure the MTU for virtual machines in
  Azure", Azure virtual network docs).
* The dataplane follows ARM through the service's listeners: every applied NIC write requests a pass.

A VM's namespace is named after the VM (its resource id has slashes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from vpccni.cloud.azure.parse import linux_mac, vnet_of
from vpccni.errors import CloudNotFound
from vpccni.localcloud.model import EniView, InstanceView, Node
from vpccni.localcloud.vpc.fabric import NodeServices
from vpccni.localcloud.vpc.netlink import IMDS_ADDRESS
from vpccni.localcloud.vpc.sockets import endpoint_of, listening_socket

if TYPE_CHECKING:
    from vpccni.localcloud.azure.cloud import AzureVm, LocalAzure

VNET_MTU = 1500


def node_of(vm: AzureVm) -> Node:
    """An Azure VM as the local clouds' common :class:`~vpccni.localcloud.model.Node`."""
    return Node(
        instance_id=vm.resource_id,
        instance_type=vm.size,
        availability_zone=vm.location,
        region=vm.location,
        subnet_id=vm.subnet_id,
        vpc_id=vnet_of(vm.subnet_id),
        primary_eni_id=vm.nic_ids[0],
        primary_ip=vm.primary_ip,
        mac=linux_mac(vm.mac),
        imds_endpoint=vm.imds_endpoint,
    )


class AzureFabric:
    """The emulated network's view of one LocalAzure. Nodes are named by their VM's resource id."""

    link_mtu = VNET_MTU

    def __init__(self, azure: LocalAzure) -> None:
        self.azure = azure

    def _vm(self, instance_id: str) -> AzureVm:
        found = next((vm for vm in self.azure.vms() if vm.resource_id.lower() == instance_id.lower()), None)
        if found is None:
            raise CloudNotFound("GetVirtualMachine", "ResourceNotFound", f"no VM {instance_id}")
        return found

    def instance_view(self, instance_id: str) -> InstanceView:
        vm = self._vm(instance_id)
        state = self.azure.state
        enis = []
        with self.azure.service.lock:
            for index, nic_id in enumerate(state.vms[vm.resource_id.lower()].nic_ids):
                nic = state.nic(nic_id)
                configs = sorted(nic.ip_configs, key=lambda c: not c.primary)
                subnet = state.subnet(configs[0].subnet_id)
                vnet = next(v for key, v in state.vnets.items() if key == subnet.vnet_key)
                enis.append(EniView(
                    eni_id=nic.id,
                    mac=linux_mac(nic.mac),
                    subnet_id=subnet.id,
                    subnet_cidr=str(subnet.prefix),
                    vpc_id=vnet.id,
                    vpc_cidrs=(str(vnet.prefix),),
                    availability_zone=nic.location,
                    security_group_ids=configs[0].asg_ids,
                    private_ips=tuple(c.private_ip for c in configs),
                    ipv4_prefixes=(),
                    status="in-use",
                    tags=tuple(sorted(nic.tags.items())),
                    instance_id=vm.resource_id,
                    device_index=index,
                    attachment_id=nic.id,
                    attachment_status="attached",
                    delete_on_termination=True,
                ))
        return InstanceView(instance_id=vm.resource_id, instance_type=vm.size, availability_zone=vm.location,
                            region=vm.location, subnet_id=vm.subnet_id, vpc_id=vnet_of(vm.subnet_id),
                            state="running", enis=tuple(enis))

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.azure.add_listener(listener)

    def netns_role(self, instance_id: str) -> str:
        return self._vm(instance_id).name

    def serve_node(self, instance_id: str, netns_path: str) -> NodeServices:
        vm = self._vm(instance_id)
        imds = self.azure.serve_imds(vm, listening_socket(netns_path, IMDS_ADDRESS, 80))
        try:
            arm_sock = listening_socket(netns_path, "127.0.0.1", 0)
            endpoint = endpoint_of(arm_sock).replace("http://", "https://", 1)
            stop_arm = self.azure.server.serve_on(arm_sock)
        except BaseException:
            imds.stop()
            raise

        def stop() -> None:
            stop_arm()
            imds.stop()

        return NodeServices(endpoint, f"http://{IMDS_ADDRESS}", stop)

    def node_env(self, instance_id: str, services: NodeServices) -> dict[str, str]:
        """What ipamd (or any ARM client) inside the VM needs beyond IMDS: ARM's endpoint and its CA. The
        managed identity's token comes from IMDS at 169.254.169.254, as on a VM."""
        return {
            "VPCCNI_CLOUD": "azure",
            "VPCCNI_AZURE_ARM_ENDPOINT": services.api_endpoint,
            "VPCCNI_AZURE_CA_BUNDLE": str(self.azure.ca_file),
        }
