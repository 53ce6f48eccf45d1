"""One set of provider cases, two worlds: the in-memory fake, and the AWS provider on the local cloud.

``world`` is parametrised: each test runs once per world. Both clouds offer the same scenario helpers
(``default_network``, ``create_vpc``, ``create_subnet``, ``create_security_group``, ``add_node``), so a
test builds its network once for both; what differs (terminating an instance, injecting a fault,
counting requests) is behind :class:`World`.

The local cloud is the reference. The AWS provider here has its retries off (one attempt) so a test sees
the first answer, as the fake without a runner gives it; :meth:`World.retrying_provider` gives both the
same :class:`~vpccni.cloud.retry.CallRunner` policy for the cases about retries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from vpccni.cloud.aws.client import AwsSettings, make_ec2_client
from vpccni.cloud.aws.provider import AwsProvider, aws_runner
from vpccni.cloud.aws.tags import TAG_INSTANCE_ID, interface_description
from vpccni.cloud.base import CloudProvider, NetworkInterface
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.fake import FakeCloud, FakeProvider, map_error
from vpccni.cloud.retry import CallRunner, RetrySettings

ONE_ATTEMPT = RetrySettings(max_attempts=1)
FAKE, LOCAL = "fake", "localcloud"


@dataclass
class World:
    """A cloud, a provider over it, and the few things the two clouds do differently."""

    name: str
    cloud: Any  # FakeCloud | LocalCloud: the same scenario helpers
    provider: CloudProvider
    retrying_provider: Callable[[RetrySettings], CloudProvider]  # the same CallRunner policy for both
    terminate: Callable[[str], None]  # TerminateInstances
    fail: Callable[[str, str, int], None]  # (action, EC2 error code, count)
    calls: Callable[[str], int]  # requests of an action that reached the cloud
    request: pytest.FixtureRequest

    def local_cloud_differs(self, why: str) -> None:
        """This case is where the local cloud is wrong against real EC2 (the fake follows EC2): expect it to
        fail on the local cloud. Strict, so a local cloud that learns the rule turns it into a failure."""
        if self.name == LOCAL:
            reason = f"the local cloud differs from EC2: {why}"
            self.request.applymarker(pytest.mark.xfail(strict=True, reason=reason))

    def node(self, instance_type: str = "m5.large", **kwargs: Any) -> Any:
        return self.cloud.add_node(instance_type, **kwargs)

    def new_eni(self, node: Any, **kwargs: Any) -> NetworkInterface:
        """An interface in the node's subnet with its group, our description and our instance tag."""
        args: dict[str, Any] = {
            "subnet_id": node.subnet_id,
            "security_group_ids": self.provider.describe_instance(node.instance_id).security_group_ids,
            "description": interface_description(node.instance_id),
            "tags": {TAG_INSTANCE_ID: node.instance_id},
        }
        args.update(kwargs)
        return self.provider.create_interface(**args)


def _fake_world(request: pytest.FixtureRequest) -> World:
    cloud = FakeCloud(seed=7)

    def retrying(retry: RetrySettings) -> CloudProvider:
        budget = ApiBudget(BudgetSettings.unlimited())
        return FakeProvider(cloud, runner=CallRunner(map_error=map_error, retry=retry, budget=budget))

    return World(FAKE, cloud, FakeProvider(cloud), retrying, cloud.terminate,
                 lambda action, code, count: cloud.fail(action, code, count=count), cloud.calls, request)


def _local_world(request: pytest.FixtureRequest, localcloud: Any) -> World:
    settings = AwsSettings(region=localcloud.region, endpoint_url=localcloud.ec2_endpoint)

    def provider(retry: RetrySettings) -> CloudProvider:
        runner = aws_runner(retry=retry, budget=ApiBudget(BudgetSettings.unlimited()))
        return AwsProvider(make_ec2_client(settings), runner)

    def terminate(instance_id: str) -> None:
        localcloud.client().terminate_instances(InstanceIds=[instance_id])

    def calls(action: str) -> int:
        entry = localcloud.server.counters().get(action)
        return 0 if entry is None else int(entry.calls)

    def fail(action: str, code: str, count: int) -> None:
        localcloud.server.faults.inject(action, code, count=count)

    return World(LOCAL, localcloud, provider(ONE_ATTEMPT), provider, terminate, fail, calls, request)


@pytest.fixture(params=[FAKE, LOCAL])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> World:
    if request.param == FAKE:
        return _fake_world(request)
    # The provider takes credentials from boto3's default chain; the local cloud accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return _local_world(request, request.getfixturevalue("localcloud"))

