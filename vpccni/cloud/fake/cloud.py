"""FakeCloud: an in-memory EC2 for one account and region — scenario helpers, a fault hook, a call log.

    cloud = FakeCloud(seed=1)
    node = cloud.add_node("m5.large")               # VPC, subnet, group and an instance, as the local cloud's
    provider = FakeProvider(cloud)                  # a CloudProvider over it (vpccni.cloud.fake.provider)
    cloud.fail("AttachNetworkInterface", "AttachmentLimitExceeded", count=1)
    cloud.mutations()["CreateNetworkInterface"]     # successful mutating requests, by action

The scenario helpers mirror :class:`vpccni.localcloud.LocalCloud`'s (``create_vpc``, ``create_subnet``,
``create_security_group``, ``default_network``, ``add_node``) so a test can be written once for both;
they are set-up, not requests: neither logged nor subject to faults.

Every provider request goes through :meth:`FakeCloud.request`, under one lock (the fake is thread-safe:
ipamd calls its provider from worker threads): the fault hook first, then the action, then the log. The
fault hook answers a given EC2 error code instead of acting, for the next ``count`` requests of an action
(``"*"``: any action), as the local cloud's fault injection does; the provider maps the code to vpccni's
exception class like any other answer.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from vpccni.cloud.aws.codes import status_for
from vpccni.cloud.base import NetworkInterface
from vpccni.cloud.budget import ActionClass, action_class
from vpccni.cloud.fake import ec2
from vpccni.cloud.fake.model import Node, SubnetRec, SubnetRef, Vpc, VpcRec, interface_view, subnet_view
from vpccni.cloud.fake.state import Ec2Error, FakeState

T = TypeVar("T")

ANY_ACTION = "*"
DEFAULT_VPC_CIDR = "10.0.0.0/16"
DEFAULT_SUBNET_CIDR = "10.0.0.0/20"  # as the local cloud's default network: 4091 usable addresses
CNI_SUBNET_TAG = ("kubernetes.io/role/cni", "1")  # aws-node's subnet-discovery tag


@dataclass(frozen=True)
class Call:
    """One request that reached the fake: its EC2 action and the error code it got (None: answered)."""

    action: str
    error: str | None = None


@dataclass
class _Fault:
    code: str
    message: str
    status: int
    remaining: int | None  # None: until cleared


class FakeCloud(FakeState):
    """An in-memory EC2 (see the module docstring). ``seed`` makes address choice replayable."""

    def __init__(self, *, region: str = "us-west-2", seed: int = 0) -> None:
        super().__init__(region=region, seed=seed)
        self.lock = threading.RLock()
        self.log: list[Call] = []
        self._mutations: Counter[str] = Counter()
        self._faults: list[tuple[str, _Fault]] = []  # (action or "*", rule), in the order added
        self._default: tuple[Vpc, SubnetRef, str] | None = None

    # --- scenario building ---------------------------------------------------------------------------

    def create_vpc(self, cidr: str = DEFAULT_VPC_CIDR) -> Vpc:
        with self.lock:
            network = ipaddress.IPv4Network(cidr)
            vpc = VpcRec(self.new_id("vpc"), network, self.new_id("sg"))
            self.vpcs[vpc.vpc_id] = vpc
            self.groups[vpc.default_group] = vpc.vpc_id
            return Vpc(vpc.vpc_id, str(network))

    def create_subnet(self, vpc: Vpc, cidr: str, *, az: str | None = None,
                      tags: Mapping[str, str] | None = None) -> SubnetRef:
        """A subnet of ``vpc`` (inside its CIDR, overlapping no other subnet of it; ValueError if not)."""
        with self.lock:
            network = ipaddress.IPv4Network(cidr)
            if not network.subnet_of(self.vpcs[vpc.vpc_id].network):
                raise ValueError(f"{cidr} is not inside {vpc.vpc_id}'s {vpc.cidr}")
            siblings = (s for s in self.subnets.values() if s.vpc_id == vpc.vpc_id)
            clash = next((s for s in siblings if s.network.overlaps(network)), None)
            if clash is not None:
                raise ValueError(f"{cidr} overlaps {clash.subnet_id} ({clash.network})")
            zone = az or f"{self.region}a"
            subnet = SubnetRec(self.new_id("subnet"), vpc.vpc_id, zone, network, dict(tags or {}))
            self.subnets[subnet.subnet_id] = subnet
            return SubnetRef(subnet.subnet_id, vpc.vpc_id, str(network), subnet.availability_zone,
                             tuple(sorted(subnet.tags.items())))

    def create_security_group(self, vpc: Vpc, name: str) -> str:
        with self.lock:
            group_id = self.new_id("sg")
            self.groups[group_id] = vpc.vpc_id
            return group_id

    def default_network(self) -> tuple[Vpc, SubnetRef, str]:
        """A 10.0.0.0/16 VPC, a 10.0.0.0/20 subnet in ``<region>a`` tagged ``kubernetes.io/role/cni=1`` and a
        security group, created on first use (the local cloud's default network)."""
        with self.lock:
            if self._default is None:
                vpc = self.create_vpc(DEFAULT_VPC_CIDR)
                subnet = self.create_subnet(vpc, DEFAULT_SUBNET_CIDR, tags=dict([CNI_SUBNET_TAG]))
                self._default = (vpc, subnet, self.create_security_group(vpc, "vpccni-nodes"))
            return self._default

    def add_node(self, instance_type: str, *, subnet: SubnetRef | None = None,
                 security_groups: Sequence[str] | None = None, name: str | None = None) -> Node:
        """Run one instance (in the default network unless told otherwise); its primary ENI is
        DeleteOnTermination. An unknown type raises UnknownInstanceType. ``name``: its Name tag."""
        with self.lock:
            if subnet is None or security_groups is None:
                _, default_subnet, default_group = self.default_network()
                subnet = subnet or default_subnet
                security_groups = security_groups if security_groups is not None else [default_group]
            instance = ec2.run_instance(self, instance_type, subnet.subnet_id, security_groups)
            self.other_tags[instance.instance_id] = {"Name": name or f"vpccni-node-{len(self.instances)}"}
            primary = self.enis[instance.primary_eni_id]
            return Node(instance.instance_id, instance_type, subnet.availability_zone, self.region,
                        subnet.subnet_id, subnet.vpc_id, primary.eni_id, primary.primary, primary.mac)

    def terminate(self, instance_id: str) -> None:
        """TerminateInstances: DeleteOnTermination ENIs are deleted, the others detached."""
        with self.lock:
            ec2.terminate_instance(self, instance_id)

    # --- looking without asking (not requests: neither logged nor subject to faults) ------------------------

    def interfaces(self, instance_id: str | None = None) -> list[NetworkInterface]:
        """Every ENI (attached to ``instance_id``, by device index, when given) as EC2 describes it."""
        with self.lock:
            enis = self.attached_enis(instance_id) if instance_id is not None else list(self.enis.values())
            return [interface_view(e) for e in enis]

    def free_addresses(self, subnet_id: str) -> int:
        """The subnet's AvailableIpAddressCount."""
        with self.lock:
            return subnet_view(self.subnet(subnet_id)).available_address_count

    # --- faults ----------------------------------------------------------------------------------------

    def fail(self, action: str, code: str = "InternalError", *, count: int | None = 1,
             message: str | None = None, status: int | None = None) -> None:
        """Answer the next ``count`` requests of ``action`` (``"*"``: any) with EC2 error ``code`` instead of
        acting; ``count=None``: every request until :meth:`clear_faults`. Rules fire in the order added."""
        if count is not None and count < 1:
            raise ValueError(f"count must be >= 1 or None, got {count}")
        fault = _Fault(code, message or f"{code} (injected by the fake cloud)",
                       status if status is not None else status_for(code), count)
        with self.lock:
            self._faults.append((action, fault))

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def _fault(self, action: str) -> _Fault | None:
        for index, (on, fault) in enumerate(self._faults):
            if on in (action, ANY_ACTION):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        del self._faults[index]
                return fault
        return None

    # --- the log ---------------------------------------------------------------------------------------

    def actions(self) -> list[str]:
        """Every request's action, in order."""
        with self.lock:
            return [c.action for c in self.log]

    def calls(self, action: str) -> int:
        """Requests of ``action`` that reached the cloud, answered or refused (the local cloud's counters)."""
        with self.lock:
            return sum(1 for c in self.log if c.action == action)

    def mutations(self) -> Counter[str]:
        """Successful mutating requests, by action (what the pool's call budget counts)."""
        with self.lock:
            return Counter(self._mutations)

    @property
    def mutation_count(self) -> int:
        with self.lock:
            return self._mutations.total()

    # --- requests --------------------------------------------------------------------------------------

    def request(self, action: str, act: Callable[[], T]) -> T:
        """One request for EC2 ``action``: a due fault is answered instead; ``act`` runs under the lock.
        Ec2Error is what EC2 answered; the provider maps it."""
        with self.lock:
            fault = self._fault(action) if self._faults else None
            if fault is not None:
                self.log.append(Call(action, fault.code))
                raise Ec2Error(fault.code, fault.message, fault.status)
            try:
                result = act()
            except Ec2Error as exc:
                self.log.append(Call(action, exc.code))
                raise
            self.log.append(Call(action))
            if action_class(action) is ActionClass.MUTATING:
                self._mutations[action] += 1
            return result
