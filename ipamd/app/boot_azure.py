"""The first half of the startup sequence on Azure (VPCCNI_CLOUD=azure): the same five steps as on AWS
(:mod:`ipamd.app.boot`), read from Azure IMDS and Azure Resource Manager.

1. Azure IMDS's instance document (``/metadata/instance``, header ``Metadata: true``; VPCCNI_IMDS_ENDPOINT),
   retried until IMDS answers: subscription, resource group, the VM's resource id and size, its NICs' MACs
   and addresses (primary first);
2. the Azure provider for that subscription and resource group (VPCCNI_AZURE_ARM_ENDPOINT, the managed
   identity of VPCCNI_AZURE_IDENTITY_CLIENT_ID or the VM's own, VPCCNI_AZURE_CA_BUNDLE, the API budget,
   the call observer) and the VM from ARM: its size and the NICs it booted with, primary first (ARM, not
   IMDS, names the NICs' resource ids; the host side finds each NIC's link by its MAC);
3. limits: the NICs the VM booted with (it cannot gain one while it runs) and 256 IP configurations per
   NIC, from :mod:`vpccni.cloud.azure.vm_sizes` (no table lookup: any VM size runs);
4. the dataplane, with the virtual network's address prefixes (one ARM read) as "inside the VPC";
5. the checkpoint, as on AWS.

A missing role permission at any step stops ipamd with one line naming the ARM action, as a missing IAM
permission does on AWS.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ipamd.app.boot import Boot, api_budget
from ipamd.app.dataplane import Dataplane, build_dataplane
from ipamd.app.node_facts import until_answered
from ipamd.reconcile.node import NodeFacts
from ipamd.state.checkpoint import load_checkpoint
from vpccni.cloud.azure import vm_sizes
from vpccni.cloud.azure.imds import AzureImdsClient
from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.azure.settings import AzureSettings
from vpccni.cloud.observe import CallObserver, InFlightCalls
from vpccni.config.limits import InstanceLimits
from vpccni.config.settings import Settings

log = logging.getLogger("ipamd.app.main")

IMDS_TIMEOUT_S = 5.0  # one local request; HTTP_TIMEOUT (>= 10 s) is for ARM


async def discover_azure(settings: Settings, observer: CallObserver, stop: asyncio.Event) -> Boot:
    s = settings
    imds = AzureImdsClient(s.imds_endpoint, timeout_s=IMDS_TIMEOUT_S)
    instance = await until_answered("Azure IMDS instance", imds.instance, stop)
    budget = api_budget(s)
    in_flight = InFlightCalls()
    provider = AzureProvider.from_settings(
        AzureSettings(subscription_id=instance.subscription_id, resource_group=instance.resource_group,
                      arm_endpoint=s.azure_arm_endpoint, connection_verify=s.azure_ca_bundle or True,
                      http_timeout_s=s.http_timeout, identity_client_id=s.azure_identity_client_id),
        budget=budget, observer=observer, in_flight=in_flight)
    vm = await until_answered("GetVirtualMachine",
                              lambda: provider.describe_instance(instance.resource_id or instance.name), stop)
    primary_mac = instance.interfaces[0].mac if instance.interfaces else ""
    facts = NodeFacts(
        instance_id=vm.instance_id,  # the VM's resource id: what every later ARM call names
        instance_type=vm.instance_type,
        availability_zone=instance.location,  # Azure subnets span the region's zones
        region=instance.location,
        vpc_id=vm.vpc_id,  # the virtual network's resource id
        subnet_id=vm.subnet_id,
        primary_eni_id=vm.primary_interface_id,
        primary_ip=instance.primary_address,
        security_group_ids=vm.security_group_ids,  # application security groups; informational here
    )
    size = vm_sizes.lookup(vm.instance_type)
    limits = InstanceLimits(instance_type=vm.instance_type, max_enis=max(len(vm.interfaces), 1),
                            ipv4_per_eni=vm_sizes.IP_CONFIGS_PER_NIC, ipv6_per_eni=0, hypervisor="",
                            bare_metal=False, network_cards=1, vcpus=size.vcpus if size else 0)
    log.info("Azure VM %s (%s, %s): %d NIC(s), primary %s %s", instance.name, vm.instance_type,
             instance.location, limits.max_enis, instance.primary_address, primary_mac)

    def vnet_prefixes() -> Sequence[str]:
        return provider.virtual_network_prefixes(facts.vpc_id)

    dataplane = Dataplane()
    if s.dataplane != "none":
        cidrs = await until_answered("GetVirtualNetwork", vnet_prefixes, stop)
        dataplane = build_dataplane(s, primary_mac=primary_mac, primary_ipv4=instance.primary_address,
                                    vpc_cidrs=cidrs)
    return Boot(budget=budget, in_flight=in_flight, provider=provider, facts=facts, limits=limits,
                prefix_delegation=False, dataplane=dataplane, checkpoint=load_checkpoint(s.backing_store),
                imds=None, vpc_cidrs=vnet_prefixes)
