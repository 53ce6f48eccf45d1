"""The cloud boundary: a small provider interface, its AWS implementation, the API budget and IMDS.

Layout (one responsibility per module):

- :mod:`~vpccni.cloud.base`: :class:`CloudProvider` (typing.Protocol) and its frozen result types;
- :mod:`~vpccni.cloud.aws`: :class:`~vpccni.cloud.aws.AwsProvider` over boto3, built on
  :mod:`~vpccni.cloud.aws_client` (client settings), :mod:`~vpccni.cloud.aws_errors` (botocore ->
  vpccni.errors), :mod:`~vpccni.cloud.aws_parse` (responses -> dataclasses) and
  :mod:`~vpccni.cloud.retry` (budget + observation + tenacity retries around every request);
- :mod:`~vpccni.cloud.budget`: token buckets per action class with AIMD on throttling;
- :mod:`~vpccni.cloud.observe`: :class:`CallObserver`, what metrics hang off;
- :mod:`~vpccni.cloud.imds`: the IMDSv2 client (standard library only);
- :mod:`~vpccni.cloud.tags`: aws-node's tag and description conventions;
- :mod:`vpccni.cloud.azure`: the Azure provider (IP configurations on the VM's NICs through ARM), its
  error mapping, VM-size limits and Azure IMDS client (the Azure SDK loads only when a client is built).

This package imports no boto3 at import time; ``vpccni.cloud.aws`` does.
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
from vpccni.cloud.imds import ImdsClient, ImdsIdentity, ImdsInterface, ImdsSettings
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
    "ImdsClient",
    "ImdsIdentity",
    "ImdsInterface",
    "ImdsSettings",
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
