"""The ``vpccni.testing.pytest_plugin`` pytest plugin as a user meets it: a test file of their own, run by
pytest in a
fresh interpreter that finds the plugin through its ``pytest11`` entry point (no conftest, no import)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests import REPO

pytest_plugins = ["pytester"]

USER_TESTS = """
import urllib.request

import pytest

from vpccni.errors import UnknownInstanceType


def imds(endpoint, path):
    put = urllib.request.Request(endpoint + "/latest/api/token", method="PUT",
                                 headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    token = urllib.request.urlopen(put).read().decode()
    get = urllib.request.Request(endpoint + path, headers={"X-aws-ec2-metadata-token": token})
    return urllib.request.urlopen(get).read().decode()


def test_my_code_attaches_an_eni(ec2_client, localcloud_node):
    node = localcloud_node("t3.medium")
    eni = ec2_client.create_network_interface(SubnetId=node.subnet_id)["NetworkInterface"]
    ec2_client.attach_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"],
                                        InstanceId=node.instance_id, DeviceIndex=1)
    macs = imds(node.imds_endpoint, "/latest/meta-data/network/interfaces/macs/").splitlines()
    assert macs == [node.mac + "/", eni["MacAddress"] + "/"]


def test_limits_are_enforced(ec2_client, localcloud_node):
    node = localcloud_node("t3.nano")  # 2 addresses per ENI, primary included
    with pytest.raises(ec2_client.exceptions.ClientError) as err:
        ec2_client.assign_private_ip_addresses(NetworkInterfaceId=node.primary_eni_id,
                                               SecondaryPrivateIpAddressCount=2)
    assert err.value.response["Error"]["Code"] == "PrivateIpAddressLimitExceeded"


def test_each_test_gets_a_fresh_cloud(localcloud, ec2_client):
    assert localcloud.nodes == []
    assert ec2_client.describe_instances()["Reservations"] == []
    assert ec2_client.describe_network_interfaces()["NetworkInterfaces"] == []


def test_unknown_type_is_a_clear_error(localcloud_node):
    with pytest.raises(UnknownInstanceType, match="z1.nonsense"):
        localcloud_node("z1.nonsense")
"""


FAILING_USER_TEST = """
import socket

SEEN = {}


def test_wrong_expectation(localcloud, localcloud_node):
    node = localcloud_node("m5.large")
    SEEN["imds"] = node.imds_endpoint
    SEEN["ec2"] = localcloud.ec2_endpoint
    assert node.instance_type == "m5.xlarge"


def test_the_failed_tests_endpoints_are_closed():
    assert len(SEEN) == 2
    for endpoint in SEEN.values():
        host, port = endpoint.removeprefix("http://").split(":")
        with socket.socket() as s:
            assert s.connect_ex((host, int(port))) != 0, endpoint
"""


def readme_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your own code against the local cloud", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README section has no python example"
    return match.group(1)


def test_users_test_files_run_against_the_fixtures(pytester: pytest.Pytester) -> None:
    # One pytest subprocess for all three files: each costs seconds of interpreter and moto start-up.
    pytester.makepyfile(test_mine=USER_TESTS, test_readme=readme_example(), test_fails=FAILING_USER_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=6, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_fails.py::test_wrong_expectation FAILED*",
            "*test_fails.py::test_the_failed_tests_endpoints_are_closed PASSED*",
            "*test_mine.py::test_my_code_attaches_an_eni PASSED*",
            "*test_mine.py::test_limits_are_enforced PASSED*",
            "*test_mine.py::test_each_test_gets_a_fresh_cloud PASSED*",
            "*test_mine.py::test_unknown_type_is_a_clear_error PASSED*",
            "*test_readme.py::test_second_eni_has_the_instance_types_address_limit PASSED*",
        ]
    )
    # The failure is the user's assertion, reported as such (not a fixture error).
    result.stdout.fnmatch_lines(["*assert 'm5.large' == 'm5.xlarge'*"])


def test_importing_the_plugin_stays_cheap() -> None:
    probe = ("import sys, vpccni.testing.pytest_plugin;"
             "print([m for m in ('moto', 'boto3', 'botocore') if m in sys.modules])")
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
