"""Startup facts about the node: IMDS identity, DescribeInstances, instance-type limits.

Each step is retried while the failure is transient (IMDS not answering yet on a booting instance, EC2
throttling a fleet that boots together, a 5xx), with a capped back-off, until SIGTERM; a permanent failure
(missing IAM permission, unknown instance type) stops ipamd with one line that names it. Blocking calls
run in worker threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TypeVar

from ipamd.reconcile.node import NodeFacts
from vpccni.cloud.aws.imds import ImdsClient, ImdsIdentity
from vpccni.cloud.base import CloudProvider
from vpccni.config import limits as limits_mod
from vpccni.config.limits import InstanceLimits
from vpccni.errors import RetryableError

log = logging.getLogger("ipamd.app.main")

T = TypeVar("T")

FIRST_DELAY_S = 0.2
MAX_DELAY_S = 5.0


class Stopped(Exception):
    """SIGTERM/SIGINT arrived while waiting for a start-up step."""


async def until_answered(what: str, call: Callable[[], T], stop: asyncio.Event) -> T:
    """``call()`` in a thread, retried on RetryableError with back-off; raises Stopped on ``stop``."""
    delay = FIRST_DELAY_S
    attempt = 0
    while True:
        if stop.is_set():
            raise Stopped(what)
        attempt += 1
        try:
            return await asyncio.to_thread(call)
        except RetryableError as exc:
            if attempt in (1, 2, 5) or attempt % 20 == 0:
                log.warning("%s: %s (attempt %d; retrying)", what, exc, attempt)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, MAX_DELAY_S)


async def identity(imds: ImdsClient, stop: asyncio.Event) -> ImdsIdentity:
    return await until_answered("IMDS identity", imds.identity, stop)


async def node_facts(provider: CloudProvider, imds_identity: ImdsIdentity, stop: asyncio.Event) -> NodeFacts:
    instance = await until_answered(
        "DescribeInstances", lambda: provider.describe_instance(imds_identity.instance_id), stop)
    return NodeFacts(
        instance_id=instance.instance_id,
        instance_type=instance.instance_type,
        availability_zone=instance.availability_zone,
        region=imds_identity.region,
        vpc_id=instance.vpc_id,
        subnet_id=instance.subnet_id,
        primary_eni_id=instance.primary_interface_id,
        primary_ip=imds_identity.local_ipv4,
        security_group_ids=instance.security_group_ids,
    )


async def instance_limits(provider: CloudProvider, instance_type: str, stop: asyncio.Event) -> InstanceLimits:
    """The bundled table, else DescribeInstanceTypes (UnknownInstanceType if EC2 does not know it either)."""
    known = limits_mod.lookup(instance_type)
    if known is not None:
        return known
    log.info("instance type %s is not in the bundled table; asking DescribeInstanceTypes", instance_type)
    item = await until_answered("DescribeInstanceTypes",
                                lambda: provider.describe_instance_type(instance_type), stop)
    return InstanceLimits.from_describe(item)
