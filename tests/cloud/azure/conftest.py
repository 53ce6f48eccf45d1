"""Fixtures of the Azure provider's tests: a VM in the local Azure and the provider built as a node builds it.

The provider authenticates as the VM: azure-identity's ManagedIdentityCredential reads its token from the
VM's own IMDS, which ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` points at (set for the test only). ARM is the
local Azure's https endpoint; the client trusts the local CA through ``connection_verify`` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from vpccni.cloud.azure.provider import AzureProvider
from vpccni.cloud.azure.settings import AzureSettings
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.observe import InMemoryObserver
from vpccni.cloud.retry import RetrySettings

FAST_RETRY = RetrySettings(max_attempts=4, max_total_s=30, backoff_base_s=0.01, backoff_max_s=0.05)
ProviderFactory = Callable[..., AzureProvider]


@pytest.fixture
def vm(localazure_vm: Any) -> Any:
    return localazure_vm("Standard_D4s_v5")


@pytest.fixture
def observer() -> InMemoryObserver:
    return InMemoryObserver()


@pytest.fixture
def make_provider(localazure: Any, vm: Any, observer: InMemoryObserver,
                  monkeypatch: pytest.MonkeyPatch) -> ProviderFactory:
    def make(*, on: Any = None, retry: RetrySettings = FAST_RETRY, budget: ApiBudget | None = None,
             **settings: Any) -> AzureProvider:
        node = on or vm
        monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", node.imds_endpoint)
        options: dict[str, Any] = {"lro_poll_interval_s": 0.02, "http_timeout_s": 5.0, **settings}
        azure_settings = AzureSettings(localazure.subscription_id, node.resource_group,
                                       arm_endpoint=localazure.endpoint,
                                       connection_verify=str(localazure.ca_file), **options)
        return AzureProvider.from_settings(azure_settings, retry=retry, observer=observer,
                                           budget=budget or ApiBudget(BudgetSettings.unlimited()))

    return make


@pytest.fixture
def provider(make_provider: ProviderFactory) -> AzureProvider:
    return make_provider()
