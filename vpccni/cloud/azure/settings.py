"""Settings of the Azure provider, and the azure-mgmt-network client built from them.

The client's own retries are turned down (``retry_total=0``): :mod:`vpccni.cloud.retry` is the policy,
so every request is budgeted and observed, as with boto3. Credentials: the VM's managed identity through
azure-identity's ``ManagedIdentityCredential`` (system-assigned, or the user-assigned identity named by
``identity_client_id``, e.g. an AKS kubelet identity). It reads the token from IMDS at
``http://169.254.169.254`` unless the environment variable ``AZURE_POD_IDENTITY_AUTHORITY_HOST`` names
another base URL (honoured by azure-identity's ``_credentials/imds.py`` and by msal's
``managed_identity.py``); the local Azure's tests set it to the VM's loopback IMDS. (``MSI_ENDPOINT`` and
``IDENTITY_ENDPOINT`` select other token protocols — Cloud Shell, App Service, Arc — not a VM's.)

ARM must be https: azure-core will not send a bearer token over http. A CA bundle other than the
system's (``connection_verify``) is for tests against the local Azure only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"


@dataclass(frozen=True)
class AzureSettings:
    subscription_id: str
    """The VM's subscription (IMDS ``compute.subscriptionId``)."""
    resource_group: str
    """The VM's resource group (IMDS ``compute.resourceGroupName``): where its NICs are looked up by name."""
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    """Azure Resource Manager's base URL; https only. Default: the public cloud's."""
    connection_verify: str | bool = True
    """True: the system's CAs; a path: that CA bundle (tests against the local Azure). Never False."""
    http_timeout_s: float = 10.0
    """Connect and read timeout of one HTTP request, seconds (HTTP_TIMEOUT). Default 10 s."""
    lro_poll_interval_s: float = 1.0
    """Seconds between polls of a NIC write when ARM names no Retry-After. Default 1 s."""
    lro_timeout_s: float = 60.0
    """How long one NIC write may run before it counts as timed out, seconds. Default 60 s."""
    identity_client_id: str | None = None
    """Client id of a user-assigned managed identity; None = the VM's system-assigned identity."""
    conflict_attempts: int = 5
    """Reads and writes of one NIC before a run of 412 conflicts gives up (CloudConflict). Default 5."""
    user_agent: str = "vpccni"
    """Prepended to the SDK user agent, so calls are attributable in the activity log."""

    def __post_init__(self) -> None:
        if not self.subscription_id or not self.resource_group:
            raise ValueError("AzureSettings: subscription_id and resource_group must be set")
        if urlsplit(self.arm_endpoint).scheme != "https":
            raise ValueError(
                f"AzureSettings.arm_endpoint must be https (azure-core sends tokens over TLS "
                f"only), got {self.arm_endpoint!r}"
            )
        if self.connection_verify is False:
            raise ValueError("AzureSettings.connection_verify must be True or a CA bundle path, not False")
        if self.http_timeout_s <= 0 or self.lro_poll_interval_s < 0 or self.lro_timeout_s <= 0:
            raise ValueError(f"AzureSettings: timeouts must be > 0 and the poll interval >= 0: {self!r}")
        if self.conflict_attempts < 1:
            raise ValueError(f"AzureSettings.conflict_attempts must be >= 1, got {self.conflict_attempts}")


def make_credential(settings: AzureSettings) -> Any:
    """The VM's managed identity (see the module docstring for the IMDS endpoint it uses)."""
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=settings.identity_client_id)


def make_network_client(settings: AzureSettings, credential: Any = None) -> Any:
    """A thread-safe ``NetworkManagementClient`` configured from ``settings``."""
    from azure.mgmt.network import NetworkManagementClient

    return NetworkManagementClient(
        credential if credential is not None else make_credential(settings),
        settings.subscription_id,
        base_url=settings.arm_endpoint,
        connection_verify=settings.connection_verify,
        connection_timeout=settings.http_timeout_s,
        read_timeout=settings.http_timeout_s,
        retry_total=0,
        polling_interval=settings.lro_poll_interval_s,
        user_agent=settings.user_agent,
    )
