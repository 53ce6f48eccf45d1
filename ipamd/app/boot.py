"""What ipamd learns about its node before it can build anything: the first half of the startup sequence.

One pass, each step retried while its failure is transient (see :mod:`ipamd.app.node_facts`):

1. IMDS identity, retried until IMDS answers;
2. the EC2 client (AWS_EC2_ENDPOINT honoured, the API budget — behind the fleet's ledger with
   VPCCNI_FLEET_BUDGET —, the call observer) and DescribeInstances;
3. instance limits (the bundled table, else DescribeInstanceTypes);
4. the dataplane (VPCCNI_DATAPLANE; the Linux one reads the VPC's CIDRs from IMDS);
5. the checkpoint (an unreadable one stops ipamd: starting empty would hand out held addresses).

On Azure (VPCCNI_CLOUD=azure) the same five steps read Azure IMDS and ARM instead
(:mod:`ipamd.app.boot_azure`). The result, :class:`Boot`, is plain data: :class:`ipamd.app.daemon.Node` is
built from it without I/O.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ipamd.app.dataplane import Dataplane, build_dataplane
from ipamd.app.node_facts import identity, instance_limits, node_facts, until_answered
from ipamd.reconcile.node import NodeFacts, prefix_delegation
from ipamd.state.checkpoint import CheckpointData, load_checkpoint
from vpccni.cloud.aws.client import AwsSettings
from vpccni.cloud.aws.imds import ImdsClient, ImdsSettings
from vpccni.cloud.aws.provider import AwsProvider
from vpccni.cloud.base import CloudProvider
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.observe import CallObserver, InFlightCalls
from vpccni.config.limits import InstanceLimits
from vpccni.config.settings import Settings

log = logging.getLogger("ipamd.app.main")


@dataclass(frozen=True)
class Boot:
    """The node as ipamd found it at start, and the clients it found it with."""

    budget: ApiBudget
    in_flight: InFlightCalls  # the provider's cloud calls under way, for "why no IP" and the slow-call log
    provider: CloudProvider
    facts: NodeFacts
    limits: InstanceLimits
    prefix_delegation: bool  # ENABLE_PREFIX_DELEGATION where the instance type can do it
    dataplane: Dataplane
    checkpoint: CheckpointData | None  # None: no checkpoint yet (a new node)
    imds: ImdsClient | None  # EC2's IMDS, the reconciler's cheap hint that EC2 changed; None on Azure
    vpc_cidrs: Callable[[], Sequence[str]]  # blocking: the VPC's (Azure: VNet's) IPv4 CIDRs as they are now


def api_budget(s: Settings) -> ApiBudget:
    return ApiBudget(BudgetSettings.from_sizes(
        mutating_capacity=s.api_mutating_bucket, mutating_rate=s.api_mutating_refill,
        describe_capacity=s.api_describe_bucket, describe_rate=s.api_describe_refill))


async def discover(settings: Settings, observer: CallObserver, stop: asyncio.Event) -> Boot:
    """Steps 1-5 of the startup sequence; raises :class:`~ipamd.app.node_facts.Stopped` on ``stop``."""
    s = settings
    if s.cloud == "azure":
        from ipamd.app.boot_azure import discover_azure  # the Azure SDK loads on Azure nodes only

        return await discover_azure(s, observer, stop)
    imds = ImdsClient(ImdsSettings(endpoint=s.imds_endpoint, timeout_s=s.http_timeout), observer=observer)
    ident = await identity(imds, stop)
    budget = api_budget(s)
    if s.fleet_budget:
        budget = fleet_budget(s, budget)
    in_flight = InFlightCalls()
    provider = AwsProvider.from_settings(
        AwsSettings(region=s.region or ident.region, endpoint_url=s.ec2_endpoint,
                    http_timeout_s=s.http_timeout),
        budget=budget, observer=observer, in_flight=in_flight)
    facts = await node_facts(provider, ident, stop)
    limits = await instance_limits(provider, facts.instance_type, stop)
    pd = prefix_delegation(s, limits)
    if s.enable_prefix_delegation and not pd:
        log.warning("%s cannot delegate prefixes (not Nitro); using secondary IPs", facts.instance_type)

    def vpc_cidrs() -> Sequence[str]:
        return imds.interface(ident.mac).vpc_cidrs

    dataplane = Dataplane()
    if s.dataplane != "none":
        cidrs = await until_answered("IMDS primary interface", vpc_cidrs, stop)
        dataplane = build_dataplane(s, primary_mac=ident.mac, primary_ipv4=ident.local_ipv4, vpc_cidrs=cidrs)
    return Boot(budget=budget, in_flight=in_flight, provider=provider, facts=facts, limits=limits,
                prefix_delegation=pd, dataplane=dataplane, checkpoint=load_checkpoint(s.backing_store),
                imds=imds, vpc_cidrs=vpc_cidrs)


def fleet_budget(settings: Settings, local: ApiBudget) -> ApiBudget:
    """VPCCNI_FLEET_BUDGET: the node's budget behind a reservation in the fleet's ledger (a ConfigMap),
    paced at VPCCNI_FLEET_BUDGET_SHARE of the account's documented EC2 buckets."""
    from ipamd.k8s.client import KubeApi, load_configuration, new_api_client, own_pod_namespace
    from ipamd.k8s.ledger import ConfigMapLedger, split
    from vpccni.cloud.aws.buckets import DOCUMENTED, bucket_of
    from vpccni.cloud.fleetbudget import FleetBudget, Rate

    assert settings.fleet_budget is not None
    api = KubeApi(new_api_client(load_configuration(cluster_endpoint=settings.cluster_endpoint)))
    namespace, name = split(settings.fleet_budget, own_pod_namespace())
    share = settings.fleet_budget_share
    rates = {bucket: Rate(b.capacity * share, b.refill_per_s * share) for bucket, b in DOCUMENTED.items()}
    log.info("fleet budget: EC2 calls booked in ConfigMap %s/%s at %g of the account's buckets",
             namespace, name, share)
    return FleetBudget(local, ConfigMapLedger(api, namespace, name), rates, bucket_of)
