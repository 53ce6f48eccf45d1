"""Building the EC2 client (botocore): endpoint, region, timeouts, credentials, SDK retries turned down.

Unlike aws-node, an explicit endpoint (``AWS_EC2_ENDPOINT``) is honoured for the EC2 client itself,
which is what lets the whole daemon run against the local cloud. Credentials come from botocore's default
chain (environment, shared files, container/instance role). Botocore's own retries default to a single
attempt: :mod:`vpccni.cloud.retry` is the policy, so every request is budgeted and observed. The EC2
model is cut down to the operations ipamd calls (:mod:`vpccni.cloud.aws.model`): a fifth of the cold
start and a third of ipamd's memory otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.config import Config


@dataclass(frozen=True)
class AwsSettings:
    region: str
    """AWS region, e.g. ``us-west-2`` (from IMDS placement/region, or AWS_REGION)."""
    endpoint_url: str | None = None
    """EC2 endpoint override (AWS_EC2_ENDPOINT), e.g. ``http://127.0.0.1:5000``. Default: AWS's."""
    http_timeout_s: float = 10.0
    """Connect and read timeout of one HTTP request, seconds (HTTP_TIMEOUT). Default 10 s."""
    sdk_max_attempts: int = 1
    """Botocore's total attempts per request; 1 = our retry policy alone decides. Default 1."""
    user_agent_extra: str = "vpccni"
    """Appended to the SDK user agent, so calls are attributable in CloudTrail."""
    max_pool_connections: int = 10
    """HTTP connections kept for concurrent worker threads. Default 10."""

    def __post_init__(self) -> None:
        if not self.region:
            raise ValueError("AwsSettings.region must be set (e.g. 'us-west-2')")
        if self.http_timeout_s <= 0:
            raise ValueError(f"AwsSettings.http_timeout_s must be > 0, got {self.http_timeout_s}")
        if self.sdk_max_attempts < 1:
            raise ValueError(f"AwsSettings.sdk_max_attempts must be >= 1, got {self.sdk_max_attempts}")


def trimmed_session() -> botocore.session.Session:
    """A botocore session whose EC2 model is vpccni's cut-down one (:mod:`vpccni.cloud.aws.model`).

    botocore directly, not boto3: boto3's import brings s3transfer along (~70 ms of a cold start) for
    nothing ipamd uses; the client and its credential chain are botocore's either way."""
    from vpccni.cloud.aws.model import DATA_DIR

    core = botocore.session.get_session()
    core.get_component("data_loader").search_paths.insert(0, str(DATA_DIR))
    return core


def make_ec2_client(settings: AwsSettings, session: botocore.session.Session | None = None) -> Any:
    """A thread-safe EC2 client configured from ``settings``."""
    config = Config(
        region_name=settings.region,
        connect_timeout=settings.http_timeout_s,
        read_timeout=settings.http_timeout_s,
        retries={"mode": "standard", "total_max_attempts": settings.sdk_max_attempts},
        user_agent_extra=settings.user_agent_extra,
        max_pool_connections=settings.max_pool_connections,
    )
    session = session or trimmed_session()
    return session.create_client(
        "ec2", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
    )
