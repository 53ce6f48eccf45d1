"""vpccni.localcloud.azure: an ARM-faithful local Azure — an https ARM endpoint (NICs, subnets, VMs read)
with NIC writes as long-running operations, etags, ARM's limits and errors, throttling, faults, latency
profiles, RBAC, and one Azure IMDS (instance document and managed-identity token) per VM.

Start with :class:`LocalAzure` (the facade). Faults, throttling, latency and counters are the EC2 local
cloud's own pieces (:mod:`vpccni.localcloud.ec2.faults`, ``.throttle``, ``.latency``,
``.counters``, and its control plane) fed with Azure's action names and numbers
(:mod:`~vpccni.localcloud.azure.policy`). Names resolve lazily: importing this package imports
neither the Azure SDK nor ``cryptography``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vpccni.lazy import lazy_exports

if TYPE_CHECKING:
    from vpccni.localcloud.azure.cloud import AzureVm, LocalAzure
    from vpccni.localcloud.azure.model import ArmLimits
    from vpccni.localcloud.azure.rbac import RoleDefinition

_EXPORTS = {"LocalAzure": "cloud", "AzureVm": "cloud", "ArmLimits": "model", "RoleDefinition": "rbac"}
__all__ = ["ArmLimits", "AzureVm", "LocalAzure", "RoleDefinition"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
