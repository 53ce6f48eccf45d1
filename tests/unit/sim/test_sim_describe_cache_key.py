"""Which describes the local EC2 keeps per instance: only those scoped to exactly one instance."""

from __future__ import annotations

import pytest

from vpccni.localcloud.ec2.describe_cache import DescribeCache
from vpccni.localcloud.ec2.query import QueryRequest


def _request(**params: str) -> QueryRequest:
    return QueryRequest((("Action", "x"), ("Version", "2016-11-15"), *params.items()))


@pytest.mark.parametrize(("action", "params", "key"), [
    ("DescribeInstances", {"InstanceId.1": "i-1"}, ("DescribeInstances", "i-1")),
    ("DescribeInstances", {"InstanceId.1": "i-1", "InstanceId.2": "i-2"}, None),
    ("DescribeInstances", {}, None),
    ("DescribeInstances", {"InstanceId.1": "i-1", "Filter.1.Name": "x", "Filter.1.Value.1": "y"}, None),
    ("DescribeNetworkInterfaces", {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": "i-1",
                                   "MaxResults": "1000"}, ("DescribeNetworkInterfaces", "i-1|1000")),
    ("DescribeNetworkInterfaces", {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": "i-*"},
     None),  # a wildcard may match several instances
    ("DescribeNetworkInterfaces", {"Filter.1.Name": "status", "Filter.1.Value.1": "available"}, None),
    ("DescribeNetworkInterfaces", {"Filter.1.Name": "attachment.instance-id", "Filter.1.Value.1": "i-1",
                                   "NetworkInterfaceId.1": "eni-1"}, None),
    ("DescribeSubnets", {"SubnetId.1": "subnet-1"}, None),
])
def test_only_one_instance_s_describes_are_kept(action: str, params: dict[str, str],
                                                key: tuple[str, str] | None) -> None:
    assert DescribeCache.key(action, _request(**params)) == key
