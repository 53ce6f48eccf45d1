"""The fleet's EC2 ledger in a ConfigMap: the store :class:`vpccni.cloud.fleetbudget.FleetBudget` reserves in.

One ConfigMap (``VPCCNI_FLEET_BUDGET``) holds the ledger as text under ``data.ledger``; every node of the
cluster reads it and writes it back over the version it read (a merge patch carrying
``metadata.resourceVersion``: the API server refuses it with 409 if another node wrote first, and the
budget reads again). The first
node creates it (a create that loses to another node's create reads again too). Requests are blocking:
the budget runs in the worker thread of the EC2 call it paces.
"""

from __future__ import annotations

from ipamd.k8s.client import KubeApi, RawObject
from vpccni.errors import KubernetesConflict, KubernetesRejected

DATA_KEY = "ledger"


class ConfigMapLedger:
    """A :class:`~vpccni.cloud.fleetbudget.LedgerStore` on one ConfigMap."""

    def __init__(self, api: KubeApi, namespace: str, name: str) -> None:
        self._api = api
        self.namespace = namespace
        self.name = name

    def read(self) -> tuple[str | None, str | None]:
        try:
            obj = self._api.get_config_map(self.namespace, self.name)
        except KubernetesRejected as exc:
            if exc.status == 404:
                return None, None
            raise
        version = (obj.get("metadata") or {}).get("resourceVersion")
        return (obj.get("data") or {}).get(DATA_KEY), str(version) if version is not None else None

    def write(self, text: str, version: str | None) -> bool:
        try:
            if version is None:
                body: RawObject = {"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": self.name, "namespace": self.namespace,
                                                "labels": {"app.kubernetes.io/managed-by": "vpccni"}},
                                   "data": {DATA_KEY: text}}
                self._api.create_config_map(self.namespace, body)
            else:
                self._api.patch_config_map(self.namespace, self.name, {
                    "metadata": {"resourceVersion": version}, "data": {DATA_KEY: text}})
        except KubernetesConflict:
            return False  # another node wrote (or created) first: read again
        return True


def split(target: str, default_namespace: str) -> tuple[str, str]:
    """(namespace, name) of VPCCNI_FLEET_BUDGET's ``name`` or ``namespace/name``."""
    namespace, _, name = target.rpartition("/")
    return namespace or default_namespace, name
