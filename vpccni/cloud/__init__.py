"""The cloud boundary: a small provider interface, the API budget, retries and call observation, in
cloud-neutral terms; one subpackage per cloud implements the interface (:mod:`vpccni.cloud.aws`).

Layers: the cloud-neutral modules here import only :mod:`vpccni.errors` and the standard library; a cloud's
subpackage imports them and its SDK. Layout:

- :mod:`~vpccni.cloud.base`: :class:`CloudProvider` (typing.Protocol) and its frozen result types;
- :mod:`~vpccni.cloud.aws.provider`: :class:`~vpccni.cloud.aws.provider.AwsProvider` over boto3, built on
  :mod:`~vpccni.cloud.aws.client` (client settings), :mod:`~vpccni.cloud.aws.errors` (botocore ->
  vpccni.errors), :mod:`~vpccni.cloud.aws.parse` (responses -> dataclasses) and
  :mod:`~vpccni.cloud.retry` (budget + observation + tenacity retries around every request);
- :mod:`~vpccni.cloud.budget`: token buckets per action class with AIMD on throttling;
- :mod:`~vpccni.cloud.observe`: :class:`CallObserver`, what metrics hang off;
- :mod:`~vpccni.cloud.aws.imds`: the IMDSv2 client (standard library only);
- :mod:`~vpccni.cloud.aws.tags`: aws-node's tag and description conventions;
- :mod:`vpccni.cloud.azure`: the Azure provider (IP configurations on the VM's NICs through ARM), its
  error mapping, VM-size limits and Azure IMDS client (the Azure SDK loads only when a client is built);
- :mod:`vpccni.cloud.fake`: an in-memory EC2 and a provider over it for fast tests, standard library only
  (it shares :mod:`~vpccni.cloud.addressing`, EC2's address and /28 choice, with the local cloud, and
  :mod:`~vpccni.cloud.aws.codes`, EC2's error codes -> vpccni's classes, with the AWS provider).

This package imports no boto3 at import time; ``vpccni.cloud.aws.provider`` does.
"""

from vpccni.cloud.base import (
    Attachment,
    CloudProvider,
    InstanceInfo,
    InterfaceSlot,
    NetworkInterface,
    Subnet,
    Tags,
    freeze_tags,
)
from vpccni.cloud.budget import (
    ActionClass,
    ApiBudget,
    BucketSettings,
    BucketState,
    BudgetSettings,
    action_class,
)
from vpccni.cloud.observe import CallObserver, CallRecord, FanOutObserver, InMemoryObserver, NullObserver

__all__ = [
    "ActionClass",
    "ApiBudget",
    "Attachment",
    "BucketSettings",
    "BucketState",
    "BudgetSettings",
    "CallObserver",
    "CallRecord",
    "CloudProvider",
    "FanOutObserver",
    "InMemoryObserver",
    "InstanceInfo",
    "InterfaceSlot",
    "NetworkInterface",
    "NullObserver",
    "Subnet",
    "Tags",
    "action_class",
    "freeze_tags",
]
