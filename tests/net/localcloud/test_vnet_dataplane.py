"""The emulated VPC serving the local Azure (the same dataplane as EC2's, through AzureFabric): each IP
configuration's address reaches the NIC ARM says holds it, a NIC's traffic from an address it does not
own is dropped, and inside the VM's namespace Azure IMDS and ARM answer at the addresses a VM uses —
proven by packets and by what the receiver saw, as tests/net/localcloud/test_vpc_dataplane.py does for EC2.

One local Azure, dataplane and two-NIC VM per module (prefix ``vnt``); each test undoes its ARM changes.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.net.localcloud.vpc_dataplane_support import (
    AttachedEni,
    add_address,
    delete_rule,
    link_mac,
    remove_address,
    setup_eni_like_ipamd,
    udp_source_seen,
)
from vpccni.cloud.azure.parse import linux_mac
from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.azure.settings import AzureSettings
from vpccni.localcloud.azure import AzureVm, LocalAzure
from vpccni.localcloud.azure.fabric import AzureFabric
from vpccni.localcloud.vpc.dataplane import VpcDataplane, sweep_dataplane
from vpccni.localcloud.vpc.netns import Netns, WhoAmIServer, ping, whoami
from vpccni.testing.cluster import AZURE_REMOTE_CIDR

PREFIX = "vnt"


@dataclass
class Vnet:
    azure: LocalAzure
    dp: VpcDataplane
    vm: AzureVm
    provider: AzureProvider  # as the subscription's owner, for the test's own ARM changes

    @property
    def ns(self) -> Netns:
        return self.dp.node_netns(self.vm.resource_id)

    def nic(self, index: int) -> AttachedEni:
        """NIC ``index`` of the VM, in the shape the dataplane helpers take."""
        nic_id = self.vm.nic_ids[index]
        view = self.dp.fabric.instance_view(self.vm.resource_id).enis[index]
        return AttachedEni(nic_id, nic_id, view.mac, view.primary_ip, view.subnet_cidr, index)


@pytest.fixture(scope="module")
def vnet() -> Iterator[Vnet]:
    sweep_dataplane(PREFIX)
    try:
        with LocalAzure() as azure, VpcDataplane(AzureFabric(azure), prefix=PREFIX,
                                                 remote_cidr=AZURE_REMOTE_CIDR) as dp:
            vm = azure.add_vm("Standard_D8s_v5", nics=2)
            dp.attach_node(vm.resource_id)
            provider = AzureProvider(azure.network_client(), AzureSettings(azure.subscription_id,
                                                                           vm.resource_group))
            yield Vnet(azure, dp, vm, provider)
    finally:
        sweep_dataplane(PREFIX)


def test_the_vms_nics_are_its_links_and_the_remote_host_reaches_its_primary_address(vnet: Vnet) -> None:
    assert link_mac(vnet.ns, "eth0") == linux_mac(vnet.vm.mac)
    assert link_mac(vnet.ns, "eth1") == vnet.nic(1).mac
    assert vnet.ns.run("cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1500", "a VNet's MTU"
    assert ping(vnet.dp.remote, vnet.vm.primary_ip)
    with WhoAmIServer(vnet.dp.remote, vnet.dp.remote_ip) as server:
        assert whoami(vnet.ns, vnet.dp.remote_ip, server.port) == vnet.vm.primary_ip


def test_imds_and_arm_answer_inside_the_vm_at_a_vms_addresses(vnet: Vnet) -> None:
    def imds(path: str) -> Any:
        request = urllib.request.Request(f"http://169.254.169.254{path}", headers={"Metadata": "true"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())

    document = vnet.ns.call(lambda: imds("/metadata/instance?api-version=2021-02-01"))
    assert document["compute"]["resourceId"] == vnet.vm.resource_id
    assert len(document["network"]["interface"]) == 2
    token = vnet.ns.call(lambda: imds("/metadata/identity/oauth2/token?api-version=2018-02-01"
                                      "&resource=https://management.azure.com/"))
    assert token["token_type"] == "Bearer"

    arm = vnet.dp.node_env(vnet.vm.resource_id)["VPCCNI_AZURE_ARM_ENDPOINT"]
    assert arm.startswith("https://127.0.0.1:")

    def read_nic_through_the_vms_arm() -> Any:
        from azure.mgmt.network import NetworkManagementClient

        client = NetworkManagementClient(vnet.azure.credential(), vnet.azure.subscription_id, base_url=arm,
                                         connection_verify=str(vnet.azure.ca_file), retry_total=0)
        return client.network_interfaces.get(vnet.vm.resource_group, vnet.vm.nic_ids[0].rsplit("/", 1)[1])

    assert vnet.ns.call(read_nic_through_the_vms_arm).ip_configurations[0].private_ip_address == (
        vnet.vm.primary_ip)


def test_an_ip_configuration_reaches_its_nic_and_is_withdrawn_with_it(vnet: Vnet) -> None:
    second = vnet.nic(1)
    (address,) = vnet.provider.assign_addresses(second.eni_id, 1)
    with contextlib.ExitStack() as undo:
        undo.callback(vnet.provider.unassign_addresses, second.eni_id, [address])
        vnet.dp.wait_synced()
        setup_eni_like_ipamd(vnet.ns, second)
        add_address(vnet.ns, second.ifname, address, second.table)
        undo.callback(remove_address, vnet.ns, second.ifname, address, second.table)
        server = undo.enter_context(WhoAmIServer(vnet.ns, address))
        assert whoami(vnet.dp.remote, address, server.port) == vnet.dp.remote_ip
        assert udp_source_seen(vnet.ns, address, vnet.dp.remote, vnet.dp.remote_ip) == address

        # Leaving by eth0, whose NIC does not own it: dropped, as Azure drops it without IP forwarding.
        delete_rule(vnet.ns, address, second.table)
        assert udp_source_seen(vnet.ns, address, vnet.dp.remote, vnet.dp.remote_ip) is None

        vnet.provider.unassign_addresses(second.eni_id, [address])
        vnet.dp.wait_synced()
        assert not ping(vnet.dp.remote, address), "an address ARM took back is no longer delivered"
