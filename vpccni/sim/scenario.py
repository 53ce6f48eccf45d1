"""The fleet scenario: which nodes boot where, how many pods each must serve, when they arrive. Pure.

A scenario is plain data built from a seed: the VPC's CIDR blocks and subnets (sizes as real clusters
have them, one node subnet too small for its node group so that it runs out), the node mix (instance
types by weight, zones by weight), each node's pod demand (capped at what its ENIs can hold) and each
pod's arrival time (uniform over the first minute); a zone may have a node group of its own
(``zone_mix``). The same seed gives the same fleet, so policies
compared in one run meet exactly the same nodes and pods.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from vpccni.config.limits import InstanceLimits, require

CNI_TAG = ("kubernetes.io/role/cni", "1")


@dataclass(frozen=True)
class SubnetPlan:
    name: str
    cidr: str
    zone: str
    tagged: bool  # kubernetes.io/role/cni=1: subnet discovery may put new ENIs here
    hosts_nodes: bool  # instances launch here (their primary ENI's subnet)


# Three zones; a VPC of two /16 blocks (EKS clusters add a secondary block for pods). Zone c's node
# subnet is a /22 (1,019 addresses) for a fifth of the fleet: its primaries fit, their pod addresses do
# not, so those nodes must get pod addresses from c's tagged subnets through new ENIs.
DEFAULT_VPC_CIDRS = ("10.0.0.0/16", "10.1.0.0/16")
DEFAULT_SUBNETS = (
    SubnetPlan("a-nodes", "10.0.0.0/17", "a", tagged=True, hosts_nodes=True),
    SubnetPlan("a-pods", "10.1.0.0/18", "a", tagged=True, hosts_nodes=False),
    SubnetPlan("b-nodes", "10.0.128.0/17", "b", tagged=True, hosts_nodes=True),
    SubnetPlan("b-pods", "10.1.64.0/18", "b", tagged=True, hosts_nodes=False),
    SubnetPlan("c-nodes", "10.1.128.0/22", "c", tagged=False, hosts_nodes=True),
    SubnetPlan("c-pods", "10.1.192.0/18", "c", tagged=True, hosts_nodes=False),
    SubnetPlan("c-pods-2", "10.1.160.0/19", "c", tagged=True, hosts_nodes=False),
)
DEFAULT_MIX = (("m5.large", 3), ("m5.xlarge", 4), ("m5.2xlarge", 2), ("c5.4xlarge", 1))
DEFAULT_ZONES = (("a", 2), ("b", 2), ("c", 1))
# Zone c's node group has no m5.large: with its node subnet full, a node's pods can only use its
# secondary ENIs (in the tagged subnets), and an m5.large's two hold 18 addresses, fewer than its 27 pods.
# Every other type's secondary ENIs hold 30 pods: the scenario stays solvable, so a pod left without an
# address is the policy's doing, not the layout's.
DEFAULT_ZONE_MIX = (("c", (("m5.xlarge", 4), ("m5.2xlarge", 2), ("c5.4xlarge", 1))),)


@dataclass(frozen=True)
class FleetSpec:
    nodes: int = 2000
    pods_per_node: int = 30
    arrival_window_s: float = 60.0
    seed: int = 1
    mix: tuple[tuple[str, int], ...] = DEFAULT_MIX
    zones: tuple[tuple[str, int], ...] = DEFAULT_ZONES
    zone_mix: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = DEFAULT_ZONE_MIX  # per-zone overrides
    vpc_cidrs: tuple[str, ...] = DEFAULT_VPC_CIDRS
    subnets: tuple[SubnetPlan, ...] = DEFAULT_SUBNETS

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.pods_per_node < 1 or self.arrival_window_s < 0:
            raise ValueError(f"a fleet needs nodes >= 1, pods >= 1 and a window >= 0: {self}")
        zones = {zone for zone, _ in self.zones}
        hosting = {s.zone for s in self.subnets if s.hosts_nodes}
        if not zones <= hosting:
            raise ValueError(f"zones {sorted(zones - hosting)} have no subnet that hosts nodes")


@dataclass(frozen=True)
class NodePlan:
    index: int
    instance_type: str
    zone: str
    subnet: str  # the SubnetPlan name its instance launches in
    demand: int  # pods that must get an address
    arrivals: tuple[float, ...] = field(repr=False, default=())  # seconds after the fleet's start


def pod_addresses(limits: InstanceLimits) -> int:
    """Pod addresses the type's ENIs hold in secondary-IP mode (each ENI's primary serves no pod)."""
    return limits.max_enis * (limits.ipv4_per_eni - 1)


def demand_for(instance_type: str, pods_per_node: int) -> int:
    """The pods a node of this type is asked to serve: the fleet's number, capped at what it can hold."""
    return min(pods_per_node, pod_addresses(require(instance_type)))


def _weighted(rng: random.Random, choices: Sequence[tuple[str, int]], n: int) -> list[str]:
    """``n`` picks in the given proportions (largest remainder), in a seeded random order."""
    total = sum(weight for _, weight in choices)
    exact = [(name, n * weight / total) for name, weight in choices]
    counts = {name: int(share) for name, share in exact}
    short = n - sum(counts.values())
    for name, _ in sorted(exact, key=lambda item: item[1] - int(item[1]), reverse=True)[:short]:
        counts[name] += 1
    picks = [name for name, _ in choices for _ in range(counts[name])]
    rng.shuffle(picks)
    return picks


def fleet_plan(spec: FleetSpec) -> list[NodePlan]:
    """Every node of the fleet, with its pods' arrival times (seeded)."""
    rng = random.Random(spec.seed)
    zones = _weighted(rng, spec.zones, spec.nodes)
    mixes = dict(spec.zone_mix)
    per_zone = {zone: iter(_weighted(rng, mixes.get(zone, spec.mix), zones.count(zone)))
                for zone, _ in spec.zones}
    types = [next(per_zone[zone]) for zone in zones]
    node_subnets: Mapping[str, list[str]] = {
        zone: [s.name for s in spec.subnets if s.zone == zone and s.hosts_nodes] for zone, _ in spec.zones}
    plans = []
    for index, (instance_type, zone) in enumerate(zip(types, zones, strict=True)):
        choices = node_subnets[zone]
        demand = demand_for(instance_type, spec.pods_per_node)
        arrivals = tuple(sorted(rng.uniform(0, spec.arrival_window_s) for _ in range(demand)))
        plans.append(NodePlan(index, instance_type, zone, choices[index % len(choices)], demand, arrivals))
    return plans
