"""The local EC2 enforces vpccni's bundled limits table (aws's numbers), not moto's raw data."""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cloud.conftest import Network, create_eni, error_code, run_instance
from vpccni.config.limits import known_instance_types, require
from vpccni.localcloud.ec2.state import limits_for


def _moto_item(instance_type: str) -> dict[str, Any] | None:
    spec = importlib.util.find_spec("moto")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path, "rt") as stream:
        item: dict[str, Any] | None = json.load(stream).get(instance_type)
    return item


def test_every_type_of_the_table_is_enforced_with_its_limits() -> None:
    for name in known_instance_types():
        limits = limits_for(name)
        assert limits is not None, name
        assert (limits.max_enis, limits.ipv4_per_eni) == (require(name).max_enis, require(name).ipv4_per_eni)


def _attach(ec2: Any, subnet_id: str, instance_id: str, device_index: int) -> None:
    eni = create_eni(ec2, subnet_id)
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance_id,
                                 DeviceIndex=device_index)


def _fill_to_the_limit(ec2: Any, subnet_id: str, instance_type: str) -> ClientError:
    """Attach ENIs until EC2 refuses; the refusal, after asserting it came at the table's limit."""
    instance = run_instance(ec2, subnet_id, instance_type)
    for index in range(1, require(instance_type).max_enis):
        _attach(ec2, subnet_id, instance["InstanceId"], index)
    with pytest.raises(ClientError) as excinfo:
        _attach(ec2, subnet_id, instance["InstanceId"], require(instance_type).max_enis)
    assert error_code(excinfo) == "AttachmentLimitExceeded"
    return excinfo.value


def test_i7ie_48xlarge_takes_aws_nodes_15_enis_on_its_one_card(ec2: Any, network: Network) -> None:
    item = _moto_item("i7ie.48xlarge")
    assert item is not None  # moto's data: two cards, 8 ENIs on card 0; aws-node's: one card of 15
    assert [c["MaximumNetworkInterfaces"] for c in item["NetworkInfo"]["NetworkCards"]][0] == 8
    refused = _fill_to_the_limit(ec2, network.subnet_id, "i7ie.48xlarge")
    assert "Interface count 16" in refused.response["Error"]["Message"]


def test_p4d_24xlarge_card_0_holds_15_enis_not_the_instance_wide_60(ec2: Any, network: Network) -> None:
    item = _moto_item("p4d.24xlarge")
    assert item is not None and item["NetworkInfo"]["MaximumNetworkInterfaces"] == 60
    refused = _fill_to_the_limit(ec2, network.subnet_id, "p4d.24xlarge")
    assert "Interface count 16" in refused.response["Error"]["Message"]


def test_a_type_moto_no_longer_lists_runs_with_aws_nodes_limits(ec2: Any, network: Network) -> None:
    assert _moto_item("g4ad.xlarge") is None
    instance = run_instance(ec2, network.subnet_id, "g4ad.xlarge")  # 2 ENIs, 4 addresses each
    eni = create_eni(ec2, network.subnet_id, SecondaryPrivateIpAddressCount=3)
    ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                 InstanceId=instance["InstanceId"], DeviceIndex=1)
    with pytest.raises(ClientError) as excinfo:
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                        SecondaryPrivateIpAddressCount=1)
    assert error_code(excinfo) == "PrivateIpAddressLimitExceeded"
    with pytest.raises(ClientError) as excinfo:
        _attach(ec2, network.subnet_id, instance["InstanceId"], 2)
    assert error_code(excinfo) == "AttachmentLimitExceeded"


def test_another_network_card_is_not_emulated(ec2: Any, network: Network) -> None:
    instance = run_instance(ec2, network.subnet_id, "p4d.24xlarge")
    eni = create_eni(ec2, network.subnet_id)
    with pytest.raises(ClientError) as excinfo:
        ec2.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                     InstanceId=instance["InstanceId"], DeviceIndex=1, NetworkCardIndex=1)
    assert error_code(excinfo) == "Unsupported"
