"""pytest plugin (entry point ``pytest11: vpccni``): test your own EC2 code against the local cloud.

Installed with vpccni, so the fixtures are available in any pytest run without configuration:

- ``localcloud``: a started :class:`vpccni.localcloud.LocalCloud` (fast profile: no added latency),
  fresh for each test and shut down after it;
- ``ec2_client``: a boto3 EC2 client bound to it (dummy credentials, the cloud's region);
- ``localcloud_node``: a factory, ``localcloud_node("m5.large") -> Node`` (an instance in the default
  network with its own IMDS at ``node.imds_endpoint``; extra keyword arguments go to ``add_node``).

This module is imported by every pytest run in an environment where vpccni is installed (ours too), so it
imports nothing heavy at module level: moto and boto3 are imported inside the fixtures. On an installation
without the ``localcloud`` extra (a node's), loading it costs nothing and a test that asks for a fixture
errors with one line that says what to install; the user's other tests run as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from vpccni.extras import localcloud_missing

if TYPE_CHECKING:
    from vpccni.localcloud.cloud import LocalCloud, Node

NodeFactory = Callable[..., "Node"]


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
