"""An in-memory EC2 and a :class:`~vpccni.cloud.base.CloudProvider` over it, for fast tests.

Standard library only (no moto, no boto3, no HTTP): tens of thousands of requests per second, so the pool
simulator and in-process reconciler tests can run thousands of EC2 calls in a blink, with the EC2 rules
ipamd depends on — per-type limits from :mod:`vpccni.config.limits`, unique non-reserved addresses from
:mod:`vpccni.cloud.addressing` (the local cloud's own chooser), /28 prefixes, lowest-free device
indexes and ``AttachmentLimitExceeded``, DeleteOnTermination, tags, subnet free counts, and EC2's error
codes mapped as the AWS provider maps them. ``tests/cloud/contract`` runs one set of cases against this
and against the AWS provider on the local cloud, which is the reference where they differ.

- :mod:`.cloud`: :class:`FakeCloud` (scenario helpers, the fault hook, the call log);
- :mod:`.provider`: :class:`FakeProvider` and its error mapper;
- :mod:`.ec2`: what each action does; :mod:`.state` and :mod:`.model`: the records and their views.
"""

from vpccni.cloud.fake.cloud import ANY_ACTION, Call, FakeCloud
from vpccni.cloud.fake.model import Node, SubnetRef, Vpc
from vpccni.cloud.fake.provider import FakeProvider, Runner, map_error
from vpccni.cloud.fake.state import Ec2Error

__all__ = [
    "ANY_ACTION",
    "Call",
    "Ec2Error",
    "FakeCloud",
    "FakeProvider",
    "Node",
    "Runner",
    "SubnetRef",
    "Vpc",
    "map_error",
]
