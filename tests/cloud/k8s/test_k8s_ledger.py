"""The fleet budget's ledger in a ConfigMap, against the emulated API server: created by the first node,
replaced only over the version read (409 otherwise), and shared: two nodes' reservations queue."""

from __future__ import annotations

import pytest

from ipamd.k8s.client import KubeApi
from ipamd.k8s.ledger import ConfigMapLedger, split
from tests.kube import KubeCluster, kube_fixture  # noqa: F401  (the kube fixture)
from vpccni.cloud.budget import ApiBudget, BudgetSettings
from vpccni.cloud.fleetbudget import FleetBudget, Rate, decode


def _ledger(kube: KubeCluster) -> ConfigMapLedger:
    return ConfigMapLedger(KubeApi(kube.api_client()), "kube-system", "vpccni-ec2-budget")


def test_the_first_write_creates_it_and_a_stale_one_is_refused(kube: KubeCluster) -> None:
    ledger = _ledger(kube)
    assert ledger.read() == (None, None)
    assert ledger.write("one", None)
    text, version = ledger.read()
    assert text == "one" and version
    assert ledger.write("two", version)
    assert not ledger.write("three", version), "written over a version that moved on: 409, refused"
    assert not ledger.write("again", None), "created already: refused, read again"
    assert ledger.read()[0] == "two"


def test_two_nodes_share_one_queue(kube: KubeCluster) -> None:
    clock, slept = [1000.0], list[float]()
    rate = Rate(capacity=1, refill_per_s=2)

    def node() -> FleetBudget:
        local = ApiBudget(BudgetSettings.unlimited(), clock=lambda: clock[0], sleep=slept.append)
        return FleetBudget(local, _ledger(kube), {"mutating": rate}, lambda action: "mutating",
                           clock=lambda: clock[0], sleep=slept.append)

    a, b = node(), node()
    assert [a.acquire("AttachNetworkInterface"), b.acquire("AttachNetworkInterface"),
            a.acquire("AttachNetworkInterface")] == pytest.approx([0.0, 0.5, 1.0])
    tokens, at = decode(_ledger(kube).read()[0])["mutating"]
    assert tokens == pytest.approx(-2.0) and at == 1000.0


@pytest.mark.parametrize(("target", "namespace", "name"), [("budget", "kube-system", "budget"),
                                                          ("ops/budget", "ops", "budget")])
def test_the_setting_names_the_configmap(target: str, namespace: str, name: str) -> None:
    assert split(target, "kube-system") == (namespace, name)
