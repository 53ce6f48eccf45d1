"""The one object of the Kubernetes API the simulated fleet shares: the fleet budget's ledger.

ipamd keeps the fleet's ledger (:mod:`vpccni.cloud.fleetbudget`) in a ConfigMap and updates it with a
read and a compare-and-swap replace (:mod:`ipamd.k8s.ledger`). Here the API server is emulated for that
one object, as the API server treats it: every read returns the object with its ``resourceVersion``,
a replace carrying an older version is refused (409), and each request takes ``latency_s`` of virtual
time (a round trip to an in-cluster API server), spent in the calling fiber like any other blocking
request, so contention between nodes plays out as it would.
"""

from __future__ import annotations

from vpccni.sim import fibers

API_LATENCY_S = 0.005


class SimConfigMap:
    """A :class:`~vpccni.cloud.fleetbudget.LedgerStore` backed by one emulated ConfigMap."""

    def __init__(self, latency_s: float = API_LATENCY_S) -> None:
        self.latency_s = latency_s
        self._text: str | None = None
        self._version = 0
        self.reads = 0
        self.writes = 0
        self.conflicts = 0

    def read(self) -> tuple[str | None, str | None]:
        fibers.sleep(self.latency_s)
        self.reads += 1
        if self._text is None:
            return None, None
        return self._text, str(self._version)

    def write(self, text: str, version: str | None) -> bool:
        fibers.sleep(self.latency_s)
        current = None if self._text is None else str(self._version)
        if version != current:
            self.conflicts += 1
            return False
        self.writes += 1
        self._text = text
        self._version += 1
        return True
