"""pytest plugin (entry point ``pytest11: vpccni``): test your own EC2 code against the local cloud.

Installed with vpccni, so the fixtures are available in any pytest run without configuration:

- ``localcloud``: a started :class:`vpccni.localcloud.LocalCloud` (fast profile: no added latency),
  fresh for each test and shut down after it;
- ``ec2_client``: a boto3 EC2 client bound to it (dummy credentials, the cloud's region);
- ``localcloud_node``: a factory, ``localcloud_node("m5.large") -> Node`` (an instance in the default
  network with its own IMDS at ``node.imds_endpoint``; extra keyword arguments go to ``add_node``).

And the same for Azure (:mod:`vpccni.localcloud.azure`; it needs no moto, only the base install):

- ``localazure``: a started :class:`vpccni.localcloud.azure.LocalAzure` (fast profile), fresh per test;
- ``azure_network_client``: azure-mgmt-network's client bound to it (https, trusting its CA, as the
  subscription's Owner);
- ``localazure_vm``: a factory, ``localazure_vm("Standard_D4s_v5", nics=1) -> AzureVm`` (a running VM with
  its NICs, a managed identity and its own IMDS at ``vm.imds_endpoint``; keywords go to ``add_vm``).

This module is imported by every pytest run in an environment where vpccni is installed (ours too), so it
imports nothing heavy at module level: moto and boto3 are imported inside the fixtures. On an installation
without the ``localcloud`` extra (a node's), loading it costs nothing and a test that asks for a fixture
errors with one line that says what to install; the user's other tests run as before.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from vpccni.extras import localcloud_missing

if TYPE_CHECKING:
    from vpccni.localcloud.azure.cloud import AzureVm, LocalAzure
    from vpccni.localcloud.cloud import LocalCloud, Node

NodeFactory = Callable[..., "Node"]
VmFactory = Callable[..., "AzureVm"]


@pytest.fixture
def localcloud() -> Iterator[LocalCloud]:
    """A running local cloud for one test (EC2 endpoint + per-node IMDS), stopped afterwards."""
    if (missing := localcloud_missing("the localcloud fixture")) is not None:
        pytest.fail(missing, pytrace=False)
    from vpccni.localcloud.cloud import LocalCloud

    with LocalCloud(profile="fast") as cloud:
        yield cloud


@pytest.fixture
def ec2_client(localcloud: LocalCloud) -> Any:
    """A boto3 EC2 client bound to the ``localcloud`` fixture's endpoint."""
    return localcloud.client()


@pytest.fixture
def localcloud_node(localcloud: LocalCloud) -> NodeFactory:
    """Factory: ``localcloud_node("m5.large")`` runs an instance of that type and returns its Node."""

    def make(instance_type: str = "m5.large", **kwargs: Any) -> Node:
        return localcloud.add_node(instance_type, **kwargs)

    return make


def _localazure_missing(what: str) -> str | None:
    """None when the local Azure can run (the base install has all it needs: the Azure SDK, cryptography)."""
    missing = [name for name in ("cryptography", "azure") if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"{what} needs {', '.join(missing)}, which this installation lacks; reinstall vpccni"


@pytest.fixture
def localazure() -> Iterator[LocalAzure]:
    """A running local Azure for one test (https ARM endpoint + one IMDS per VM), stopped afterwards."""
    if (missing := _localazure_missing("the localazure fixture")) is not None:
        pytest.fail(missing, pytrace=False)
    from vpccni.localcloud.azure.cloud import LocalAzure

    with LocalAzure(profile="fast") as cloud:
        yield cloud


@pytest.fixture
def azure_network_client(localazure: LocalAzure) -> Any:
    """azure-mgmt-network's NetworkManagementClient bound to the ``localazure`` fixture, as its Owner."""
    return localazure.network_client()


@pytest.fixture
def localazure_vm(localazure: LocalAzure) -> VmFactory:
    """Factory: ``localazure_vm("Standard_D4s_v5", nics=1)`` runs a VM of that size and returns it."""

    def make(size: str = "Standard_D4s_v5", **kwargs: Any) -> AzureVm:
        return localazure.add_vm(size, **kwargs)

    return make
