"""The Azure implementation of the cloud provider interface (:class:`vpccni.cloud.base.CloudProvider`).

Layer: part of the cloud boundary, beside the AWS provider. It may import ``vpccni.cloud`` (base,
budget, retry, observe), ``vpccni.errors`` and the Azure SDK; never ipamd, the plugin or the local cloud.

On Azure a pod address is a secondary IP configuration on one of the NICs the VM booted with, added and
removed by rewriting the whole NIC through Azure Resource Manager:

- :mod:`~vpccni.cloud.azure.provider`: :class:`AzureProvider` over ``azure-mgmt-network``;
- :mod:`~vpccni.cloud.azure.settings`: :class:`AzureSettings` and the SDK client built from them;
- :mod:`~vpccni.cloud.azure.errors`: the one place Azure SDK exceptions become vpccni errors;
- :mod:`~vpccni.cloud.azure.parse`: ARM resources -> the interface's frozen dataclasses;
- :mod:`~vpccni.cloud.azure.vm_sizes`: NICs per VM size, IP configurations per NIC and VM, max pods;
- :mod:`~vpccni.cloud.azure.imds`: the Azure IMDS client (standard library only).

Importing this package, or any module of it, imports no Azure SDK: the SDK (~0.5 s of imports) loads when
a client is built or an SDK error is mapped, so a node that runs on AWS never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vpccni.lazy import lazy_exports

if TYPE_CHECKING:
    from vpccni.cloud.azure.imds import AzureImdsClient, AzureImdsInterface, AzureInstance
    from vpccni.cloud.azure.provider import AzureProvider
    from vpccni.cloud.azure.settings import AzureSettings

_EXPORTS = {
    "AzureProvider": "provider",
    "AzureSettings": "settings",
    "AzureImdsClient": "imds",
    "AzureImdsInterface": "imds",
    "AzureInstance": "imds",
}
__all__ = ["AzureImdsClient", "AzureImdsInterface", "AzureInstance", "AzureProvider", "AzureSettings"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
