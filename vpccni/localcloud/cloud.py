"""LocalCloud: the EC2-faithful local cloud in one object — an Ec2Server plus one IMDS per node.

    with LocalCloud(profile="realistic") as cloud:
        node = cloud.add_node("m5.large")          # an instance in the default network, with its own IMDS
        ec2 = cloud.client()                       # real boto3, bound to the local EC2 endpoint
        cloud.imds(node).set_lag(2.0)              # IMDS shows every change 2 s late

Scenario helpers create what a cluster needs (VPC, subnets with tags, security groups, instances) through
the same boto3 API a user would call, so the EC2 layer's semantics apply to them too.

How IMDS follows EC2: the facade registers one listener on the Ec2Server. After every successful mutating
call the listener records a snapshot of every node's instance view into that node's history
(:mod:`vpccni.localcloud.imds.history`); each node's IMDS serves from its history, which is how lag and
stale modes work. Nodes are registered under a lock of our own that is never held across an EC2 call, so
the listener (which runs under the EC2 state lock) cannot deadlock against ``add_node``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from vpccni.errors import CloudNotFound, UnknownInstanceType
from vpccni.localcloud.ec2.iam import Ec2Iam
from vpccni.localcloud.ec2.latency import LatencyProfile
from vpccni.localcloud.ec2.server import Ec2Server
from vpccni.localcloud.ec2.state import limits_for
from vpccni.localcloud.ec2.throttle import ThrottleConfig
from vpccni.localcloud.imds.history import Clock, ViewHistory
from vpccni.localcloud.imds.server import ImdsServer
from vpccni.localcloud.model import Node

__all__ = ["CNI_SUBNET_TAG", "LocalCloud", "Node", "Subnet", "Vpc", "is_known_instance_type"]

# moto accepts any image id unless AMI validation is on; describing images would cost ~0.7 s.
_IMAGE_ID = "ami-0123456789abcdef0"
DEFAULT_VPC_CIDR = "10.0.0.0/16"
# 4091 usable addresses: room for benchmarks, yet small enough that tests can fill it.
DEFAULT_SUBNET_CIDR = "10.0.0.0/20"
CNI_SUBNET_TAG = ("kubernetes.io/role/cni", "1")  # aws-node's subnet-discovery tag


def is_known_instance_type(instance_type: str) -> bool:
    """Whether the local EC2 knows the type (vpccni's bundled table, the one its limits come from)."""
    return limits_for(instance_type) is not None


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr: str


@dataclass(frozen=True)
class Subnet:
    subnet_id: str
    vpc_id: str
    cidr: str
    availability_zone: str
    tags: tuple[tuple[str, str], ...] = ()


class LocalCloud:
    """An Ec2Server and one IMDS per node. Context manager; ``start()``/``stop()`` also work.

    ``profile``: ``"fast"`` (no added latency), ``"realistic"`` (EC2-like delays, and IMDS lags by the
    profile's suggested lag) or a LatencyProfile. ``throttle``: the Ec2Server's throttle settings (None =
    its defaults). ``seed`` makes fault injection and address choice replayable. ``imds_clock`` is the
    clock IMDS lag/stale and token expiry run on (seconds, monotonic; injectable for tests).
    """

    def __init__(
        self,
        *,
        region: str = "us-west-2",
        profile: str | LatencyProfile = "fast",
        seed: int = 0,
        throttle: ThrottleConfig | None = None,
        imds_clock: Clock = time.monotonic,
    ) -> None:
        self.server = Ec2Server(region=region, profile=profile, throttle=throttle, seed=seed)
        self.region = region
        self._clock = imds_clock
        self._lock = threading.Lock()  # guards the node registry; never held across an EC2 call
        self._network_lock = threading.Lock()  # one default network even with concurrent add_node
        self._nodes: list[Node] = []
        self._imds: dict[str, ImdsServer] = {}
        self._extra_imds: list[ImdsServer] = []
        self._default: tuple[Vpc, Subnet, str] | None = None
        self._started = False
        self._setup_client: Any = None
        self.server.add_listener(self._on_mutation)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> LocalCloud:
        if not self._started:
            self.server.start()
            self._started = True
        return self

    def stop(self) -> None:
        with self._lock:
            servers = [*self._extra_imds, *self._imds.values()]
            self._extra_imds.clear()
            self._imds.clear()
        for imds in servers:
            imds.stop()
        if self._started:
            self.server.stop()
            self._started = False
            self._setup_client = None

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- access ------------------------------------------------------------------------------------

    @property
    def ec2_endpoint(self) -> str:
        return self.server.endpoint

    @property
    def account_id(self) -> str:
        return self.server.account_id

    @property
    def iam(self) -> Ec2Iam:
        """IAM mode: ``enable()``, ``create_user(name, policy)`` (see vpccni.localcloud.ec2.iam)."""
        return self.server.iam

    @property
    def nodes(self) -> list[Node]:
        with self._lock:
            return list(self._nodes)

    def client(self, **botocore_config: Any) -> Any:
        """A boto3 EC2 client bound to the local endpoint (dummy credentials).

        Keyword arguments go to ``botocore.config.Config``, e.g. ``retries={"total_max_attempts": 1}``.
        """
        return self.server.client(**botocore_config)

    def imds(self, node: Node | str) -> ImdsServer:
        """The IMDS server of ``node`` (or of an instance id): ``set_lag``, ``set_stale``, ``view``."""
        instance_id = node if isinstance(node, str) else node.instance_id
        with self._lock:
            try:
                return self._imds[instance_id]
            except KeyError:
                raise KeyError(f"no node {instance_id!r} in this local cloud") from None

    def serve_imds(self, node: Node | str, sock: socket.socket) -> ImdsServer:
        """Serve ``node``'s IMDS also on ``sock`` (already bound, e.g. 169.254.169.254:80 in its netns).

        The new server shares the node's history, so lag and stale settings apply to both.
        """
        primary = self.imds(node)
        extra = ImdsServer(
            primary.history, region=self.region, account_id=self.account_id, clock=self._clock, sock=sock
        ).start()
        with self._lock:
            self._extra_imds.append(extra)
        return extra

    def describe(self) -> dict[str, Any]:
        """Everything a user points tools at, as JSON-ready data (what ``localcloud up --json`` prints)."""
        out: dict[str, Any] = {
            "ec2_endpoint": self.ec2_endpoint,
            "region": self.region,
            "account_id": self.account_id,
            "nodes": [n.to_dict() for n in self.nodes],
        }
        if self._default is not None:
            vpc, subnet, sg = self._default
            out["vpc_id"], out["subnet_id"], out["security_group_id"] = vpc.vpc_id, subnet.subnet_id, sg
        return out

    # --- scenario building -------------------------------------------------------------------------

    def _ec2(self) -> Any:
        # One client for the facade's own calls: creating one costs tens of ms; a client is thread-safe.
        if self._setup_client is None:
            self._setup_client = self.server.client()
        return self._setup_client

    def create_vpc(self, cidr: str = DEFAULT_VPC_CIDR) -> Vpc:
        vpc = self._ec2().create_vpc(CidrBlock=cidr)["Vpc"]
        return Vpc(vpc_id=vpc["VpcId"], cidr=vpc["CidrBlock"])

    def create_subnet(
        self, vpc: Vpc, cidr: str, *, az: str | None = None, tags: Mapping[str, str] | None = None
    ) -> Subnet:
        zone = az or f"{self.region}a"
        kwargs: dict[str, Any] = {"VpcId": vpc.vpc_id, "CidrBlock": cidr, "AvailabilityZone": zone}
        if tags:
            kwargs["TagSpecifications"] = [
                {"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        subnet = self._ec2().create_subnet(**kwargs)["Subnet"]
        return Subnet(
            subnet_id=subnet["SubnetId"],
            vpc_id=vpc.vpc_id,
            cidr=subnet["CidrBlock"],
            availability_zone=subnet["AvailabilityZone"],
            tags=tuple(sorted((tags or {}).items())),
        )

    def create_security_group(self, vpc: Vpc, name: str) -> str:
        sg = self._ec2().create_security_group(GroupName=name, Description=name, VpcId=vpc.vpc_id)
        return str(sg["GroupId"])

    def default_network(self) -> tuple[Vpc, Subnet, str]:
        """The network nodes go into unless told otherwise, created on first use.

        A 10.0.0.0/16 VPC, one 10.0.0.0/20 subnet in ``<region>a`` tagged ``kubernetes.io/role/cni=1``
        (so subnet discovery finds it) and one security group.
        """
        with self._network_lock:
            if self._default is None:
                vpc = self.create_vpc(DEFAULT_VPC_CIDR)
                subnet = self.create_subnet(vpc, DEFAULT_SUBNET_CIDR, tags=dict([CNI_SUBNET_TAG]))
                sg = self.create_security_group(vpc, "vpccni-nodes")
                self._default = (vpc, subnet, sg)
            return self._default

    def add_node(
        self,
        instance_type: str,
        *,
        subnet: Subnet | None = None,
        security_groups: Sequence[str] | None = None,
        name: str | None = None,
    ) -> Node:
        """Run one instance of ``instance_type`` and start its IMDS. Unknown type → UnknownInstanceType."""
        if not is_known_instance_type(instance_type):
            raise UnknownInstanceType(instance_type)
        if not self._started:
            raise RuntimeError("LocalCloud is not started; use it as a context manager or call start()")
        if subnet is None or security_groups is None:
            _, default_subnet, default_sg = self.default_network()
            subnet = subnet or default_subnet
            security_groups = security_groups if security_groups is not None else [default_sg]
        tag = name or f"vpccni-node-{len(self.nodes) + 1}"
        reservation = self._ec2().run_instances(
            ImageId=_IMAGE_ID,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            SubnetId=subnet.subnet_id,
            SecurityGroupIds=list(security_groups),
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": tag}]}],
        )
        instance_id = reservation["Instances"][0]["InstanceId"]
        view = self.server.instance_view(instance_id)
        history = ViewHistory(view, clock=self._clock)
        history.set_lag(self.server.latency.imds_lag_s)
        imds = ImdsServer(history, region=self.region, account_id=self.account_id, clock=self._clock).start()
        primary = view.primary_eni
        node = Node(
            instance_id=instance_id,
            instance_type=instance_type,
            availability_zone=view.availability_zone,
            region=self.region,
            subnet_id=view.subnet_id,
            vpc_id=view.vpc_id,
            primary_eni_id=primary.eni_id,
            primary_ip=primary.primary_ip,
            mac=primary.mac,
            imds_endpoint=imds.endpoint,
        )
        with self._lock:
            self._nodes.append(node)
            self._imds[instance_id] = imds
        # A mutation between run_instances and registration would have been missed; catch up.
        imds.record(self.server.instance_view(instance_id))
        return node

    def scenario(self, node_types: Sequence[str]) -> list[Node]:
        """One node per entry of ``node_types`` in the default network. All types are checked first."""
        for instance_type in node_types:
            if not is_known_instance_type(instance_type):
                raise UnknownInstanceType(instance_type)
        return [self.add_node(t) for t in node_types]

    # --- IMDS following EC2 ------------------------------------------------------------------------

    def _on_mutation(self, action: str) -> None:
        with self._lock:
            watched = list(self._imds.items())
        for instance_id, imds in watched:
            try:
                view = self.server.instance_view(instance_id)
            except CloudNotFound:
                continue  # gone from EC2 altogether: IMDS keeps its last state, as a dying instance's would
            imds.record(view)
