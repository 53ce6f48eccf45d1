"""One AWS account's EC2, in process: the local cloud's EC2 semantics on the simulator's virtual clock.

The same pieces :class:`vpccni.localcloud.ec2.server.Ec2Server` serves over HTTP — moto's state, our
:class:`~vpccni.localcloud.ec2.middleware.Ec2Middleware` (EC2's rules, errors, throttling, latency,
faults, counters) — without the socket: boto3 clients reach the middleware through
:class:`vpccni.sim.bridge.WsgiBridge`. What changes is time: the account's token buckets read the
virtual clock, and latency and held faults wait in virtual time (:func:`vpccni.sim.fibers.sleep`), so a
thousand nodes calling at once meet the buckets exactly as their calls interleave in simulated time.

Scenario building (VPC, subnets, instances) goes through a client too, with throttling and latency off
until :meth:`SimAccount.open` turns them on (buckets full) at the simulation's start.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.localcloud.ec2.counters import ActionCounters, CallCounters
from vpccni.localcloud.ec2.faults import FaultInjector
from vpccni.localcloud.ec2.latency import Latency, LatencyProfile
from vpccni.localcloud.ec2.state import Ec2State
from vpccni.localcloud.ec2.throttle import ThrottleConfig, Throttler
from vpccni.sim import fibers
from vpccni.sim.bridge import WsgiBridge

ENDPOINT = "http://ec2.sim.invalid"  # never contacted: the bridge answers before a socket opens
IMAGE_ID = "ami-0123456789abcdef0"
THROTTLED = "RequestLimitExceeded"
_accounts = itertools.count()


def _account_id() -> str:
    # A range of its own, so a simulated account never shares moto state with an Ec2Server's.
    return f"{880000000000 + next(_accounts):012d}"


@dataclass(frozen=True)
class SimSubnet:
    subnet_id: str
    cidr: str
    availability_zone: str
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SimInstance:
    instance_id: str
    instance_type: str
    subnet_id: str
    availability_zone: str


class SimAccount:
    """An account's EC2 in one region: moto state + our semantics, called in process."""

    def __init__(self, *, clock: Callable[[], float], region: str = "us-west-2",
                 profile: str | LatencyProfile = "fast", throttle: ThrottleConfig | None = None,
                 seed: int = 0) -> None:
        from vpccni.localcloud.ec2.middleware import Ec2Middleware

        self.region = region
        self.state = Ec2State(_account_id(), region)
        self.lock = threading.RLock()
        with self.lock:
            self.state.create()
        self.throttle_config = throttle or ThrottleConfig.aws_documented()
        self.throttler = Throttler(ThrottleConfig.disabled(), clock=clock)
        self.profile = profile
        self.latency = Latency("fast")  # the profile applies from open(): building the scenario is free
        self.faults = FaultInjector(seed)
        self._counters = CallCounters()
        self.mutations = 0
        self.throttled_early = 0
        self.app = Ec2Middleware(
            state=self.state, lock=self.lock, throttler=self.throttler, faults=self.faults,
            latency=self.latency, counters=self._counters, rng=random.Random(seed), notify=self._mutated,
            stopping=threading.Event(), wait=_virtual_wait)
        self.bridge = WsgiBridge(self.app)
        self._setup: Any = None

    def _mutated(self, action: str) -> None:
        self.mutations += 1

    # --- clients -------------------------------------------------------------------------------------

    def client(self) -> Any:
        """A boto3 EC2 client whose requests this account serves (SDK retries off: ipamd's own policy)."""
        from botocore.config import Config

        from vpccni.localcloud.ec2.server import _session

        # Signed as any client's requests (moto finds its EC2 backend by the signature's scope).
        config = Config(retries={"total_max_attempts": 1}, region_name=self.region)
        client = self.bridge.attach(_session(self.region).client("ec2", endpoint_url=ENDPOINT, config=config))
        return client

    def node_client(self) -> Any:
        """The client simulated nodes call: :meth:`client`, behind :class:`ThrottleFirst`."""
        return ThrottleFirst(self.client(), self)

    def refuse_now(self, action: str, *, filtered: bool) -> bool:
        """Whether the account's bucket refuses ``action`` now; a refusal is counted as the middleware
        counts one (the bucket is its first check: this account runs no IAM mode, and every request is
        signed for its region)."""
        if not self.throttler.would_throttle(action, filtered=filtered):
            return False
        self._counters.call(action)
        self._counters.outcome(action, THROTTLED)
        self.throttled_early += 1
        return True

    def _ec2(self) -> Any:
        if self._setup is None:
            self._setup = self.client()
        return self._setup

    def open(self) -> None:
        """Throttling and latency on, every bucket full: the simulation starts now."""
        self.throttler.configure(self.throttle_config)
        self.latency.use(self.profile)

    def counters(self) -> dict[str, ActionCounters]:
        return self._counters.snapshot()

    # --- scenario building (before open(): not throttled) ---------------------------------------------

    def create_vpc(self, cidr: str) -> str:
        return str(self._ec2().create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])

    def associate_vpc_cidr(self, vpc_id: str, cidr: str) -> None:
        self._ec2().associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=cidr)

    def create_subnet(self, vpc_id: str, cidr: str, zone: str,
                      tags: Mapping[str, str] | None = None) -> SimSubnet:
        kwargs: dict[str, Any] = {"VpcId": vpc_id, "CidrBlock": cidr, "AvailabilityZone": zone}
        if tags:
            kwargs["TagSpecifications"] = [
                {"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
        raw = self._ec2().create_subnet(**kwargs)["Subnet"]
        return SimSubnet(raw["SubnetId"], raw["CidrBlock"], raw["AvailabilityZone"],
                         tuple(sorted((tags or {}).items())))

    def create_security_group(self, vpc_id: str, name: str) -> str:
        return str(self._ec2().create_security_group(GroupName=name, Description=name,
                                                     VpcId=vpc_id)["GroupId"])

    def run_instance(self, instance_type: str, subnet: SimSubnet, security_groups: list[str]) -> SimInstance:
        reservation = self._ec2().run_instances(ImageId=IMAGE_ID, InstanceType=instance_type, MinCount=1,
                                                MaxCount=1, SubnetId=subnet.subnet_id,
                                                SecurityGroupIds=security_groups)
        raw = reservation["Instances"][0]
        return SimInstance(raw["InstanceId"], instance_type, subnet.subnet_id, subnet.availability_zone)

    def free_addresses(self, subnet_id: str) -> int:
        with self.lock:
            return self.state.space(self.state.subnet(subnet_id)).free_count()


def _virtual_wait(seconds: float) -> bool:
    """The middleware's latency wait: virtual seconds inside a fiber (False: nobody stopped it)."""
    fibers.sleep(seconds)
    return False


class ThrottleFirst:
    """A boto3 EC2 client whose requests the account's bucket would refuse now are refused before botocore
    builds them, with the ClientError botocore raises for that answer (code RequestLimitExceeded, HTTP
    503). The middleware would answer them the same way and nothing in EC2 changes; only the simulator is
    spared serialising, signing and parsing a request that does nothing: a fleet without a shared budget
    sends millions of them. Every other request goes through the client unchanged."""

    def __init__(self, client: Any, account: SimAccount) -> None:
        self._client = client
        self._account = account
        self._actions: dict[str, str] = dict(client.meta.method_to_api_mapping)
        self._wrapped: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        if wrapped is not None:
            return wrapped
        method = getattr(self._client, name)
        action = self._actions.get(name)
        if action is None:
            return method

        def call(**params: Any) -> Any:
            if self._account.refuse_now(action, filtered=bool(params)):  # as the middleware decides
                from botocore.exceptions import ClientError

                raise ClientError({"Error": {"Code": THROTTLED, "Message": "Request limit exceeded."},
                                   "ResponseMetadata": {"HTTPStatusCode": 503}}, action)
            return method(**params)

        self._wrapped[name] = call
        return call
