"""Fixtures of the e2e tier: one emulated two-node cluster per module, the libcni runtime, and a leak check
around every test.

The cluster (m5.large + t3.medium, prefix ``ee``; on Azure a Standard_D4s_v5 + Standard_D2s_v5, prefix
``ez``) runs ipamd inside each node's namespace with short timers, and the node conflist chains Debian's
portmap, tuning (one pod sysctl) and bandwidth after us. Leftovers of a crashed earlier run with the prefix
are swept first; after the module, nothing with the prefix may remain (asserted).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import AZURE_PREFIX, POD_SYSCTL, PREFIX, Runtime, inventory, inventory_diff, namespaces
from tests.libcni import build_driver
from vpccni.testing.cluster import AZURE_NODE_TYPES, EmulatedCluster, sweep_cluster

NODE_TYPES = ("m5.large", "t3.medium")


@pytest.fixture(scope="session")
def driver() -> Path:
    return build_driver()


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[EmulatedCluster]:
    """The module's cluster: EC2's, or the local Azure's for a module (or a parameter) that asks for it
    (``pytest.mark.parametrize("cluster", ["aws", "azure"], indirect=True, scope="module")``)."""
    cloud = getattr(request, "param", "aws")
    prefix, node_types = (AZURE_PREFIX, AZURE_NODE_TYPES) if cloud == "azure" else (PREFIX, NODE_TYPES)
    sweep_cluster(prefix)
    with EmulatedCluster(
        node_types, prefix=prefix, tuning_sysctls=dict([POD_SYSCTL]), bandwidth=True, cloud=cloud
    ) as made:
        yield made
    assert namespaces(prefix) == [], "the cluster left namespaces behind"
    assert sweep_cluster(prefix) == [], "the cluster left something behind"


@pytest.fixture(scope="module")
def runtime(cluster: EmulatedCluster, driver: Path) -> Iterator[Runtime]:
    """The libcni runtime; pods it still holds at the end of the module are deleted through it."""
    rt = Runtime(cluster, driver)
    yield rt
    rt.remove_all()


@pytest.fixture(autouse=True)
def nothing_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the cluster leaves it as it found it: same namespaces, and per node the same
    links, rules, routes, portmap chains, and no process but ipamd."""
    if "cluster" not in request.fixturenames:
        yield
        return
    cluster: EmulatedCluster = request.getfixturevalue("cluster")
    before = inventory(cluster)
    yield
    after = inventory(cluster)
    assert after == before, "left behind:\n" + inventory_diff(before, after)


@pytest.fixture
def pods(runtime: Runtime) -> Iterator[Runtime]:
    """The runtime, for pods that live in one test: whatever the test added is deleted after it."""
    held = list(runtime.pods)
    yield runtime
    for pod in [p for p in runtime.pods if p not in held]:
        runtime.remove(pod)
