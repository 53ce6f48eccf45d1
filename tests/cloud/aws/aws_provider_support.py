"""Fixtures and helpers shared by the AwsProvider tests (test_aws_provider*.py).

The provider is built the way ipamd builds it: AwsSettings with the local cloud's endpoint and
credentials from boto3's default chain, an unlimited budget unless a test is about the budget, and
fast retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vpccni.cloud.aws.client import AwsSettings, make_ec2_client
from vpccni.cloud.aws.provider import AwsProvider, aws_runner
from vpccni.cloud.aws.tags import TAG_INSTANCE_ID, interface_description
from vpccni.cloud.base import InstanceInfo, NetworkInterface
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import RetrySettings

__all__ = ["_dummy_credentials", "instance", "make_provider", "node", "observer", "provider"]
"""The fixtures; test modules star-import them (helpers are imported by name)."""

FAST_RETRY = RetrySettings(max_attempts=4, max_total_s=30, backoff_base_s=0.01, backoff_max_s=0.05)
ProviderFactory = Callable[..., AwsProvider]


@pytest.fixture(autouse=True)
def _dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The provider takes credentials from boto3's default chain; the local cloud accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def observer() -> InMemoryObserver:
    return InMemoryObserver()


@pytest.fixture
def make_provider(localcloud: Any, observer: InMemoryObserver) -> ProviderFactory:
    def make(
        *,
        budget: ApiBudget | None = None,
        retry: RetrySettings = FAST_RETRY,
        http_timeout_s: float = 5.0,
        page_size: int = 1000,
        client_token: Callable[[], str] | None = None,
    ) -> AwsProvider:
        settings = AwsSettings(
            region=localcloud.region, endpoint_url=localcloud.ec2_endpoint, http_timeout_s=http_timeout_s
        )
        runner = aws_runner(
            retry=retry, budget=budget or ApiBudget(BudgetSettings.unlimited()), observer=observer
        )
        extra: dict[str, Any] = {"client_token": client_token} if client_token else {}
        return AwsProvider(make_ec2_client(settings), runner, page_size=page_size, **extra)

    return make


@pytest.fixture
def provider(make_provider: ProviderFactory) -> AwsProvider:
    return make_provider()


@pytest.fixture
def node(localcloud_node: Callable[..., Any]) -> Any:
    return localcloud_node("m5.large")  # 3 ENIs x 10 IPv4 each, Nitro (prefixes allowed)


@pytest.fixture
def instance(provider: AwsProvider, node: Any) -> InstanceInfo:
    return provider.describe_instance(node.instance_id)


def new_eni(provider: AwsProvider, instance: InstanceInfo, **kwargs: Any) -> NetworkInterface:
    """An interface in the instance's subnet with its security groups and our instance tag."""
    args: dict[str, Any] = {
        "subnet_id": instance.subnet_id,
        "security_group_ids": instance.security_group_ids,
        "description": interface_description(instance.instance_id),
        "tags": {TAG_INSTANCE_ID: instance.instance_id},
    }
    args.update(kwargs)
    return provider.create_interface(**args)


def server_calls(localcloud: Any, action: str) -> int:
    """Requests for ``action`` that reached the local EC2 server (its own counters)."""
    entry = localcloud.server.counters().get(action)
    return 0 if entry is None else int(entry.calls)
