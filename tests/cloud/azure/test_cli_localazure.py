"""``vpccni localcloud up --cloud azure`` as a user runs it: a real subprocess whose printed ARM endpoint,
CA file and VMs are used from this process through the Azure SDK and the VM's IMDS; SIGTERM exits 0."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.network import NetworkManagementClient

from tests.cloud.localcloud.test_cli_localcloud import Running
from vpccni.cli import main
from vpccni.cloud.azure.imds import AzureImdsClient


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for proc in started:
        proc.kill()


class _ImdsToken:
    """The VM's managed-identity token, fetched with plain HTTP (the process's environment stays as it is)."""

    def __init__(self, imds_endpoint: str) -> None:
        self._imds = imds_endpoint

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        import urllib.request

        url = (f"{self._imds}/metadata/identity/oauth2/token?api-version=2018-02-01"
               "&resource=https://management.azure.com/")
        request = urllib.request.Request(url, headers={"Metadata": "true"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            body = json.loads(answer.read())
        return AccessToken(body["access_token"], int(body["expires_on"]))


def test_up_azure_json_is_usable_and_sigterm_exits_0(running: list[Running]) -> None:
    cloud = Running("localcloud", "up", "--cloud", "azure", "--node", "Standard_D4s_v5", "--json")
    running.append(cloud)
    [line] = cloud.read_until(r"^\{")
    info = json.loads(line)
    assert (info["cloud"], info["location"]) == ("azure", "westeurope")
    [vm] = info["vms"]
    facts = AzureImdsClient(vm["imds_endpoint"]).instance()
    assert (facts.name, facts.vm_size) == (vm["name"], "Standard_D4s_v5")
    assert facts.primary_address == vm["primary_ip"]
    client = NetworkManagementClient(_ImdsToken(vm["imds_endpoint"]), info["subscription_id"],
                                     base_url=info["arm_endpoint"], connection_verify=info["ca_file"])
    nic = client.network_interfaces.get(vm["resource_group"], vm["nic_ids"][0].rsplit("/", 1)[1])
    assert nic.ip_configurations[0].private_ip_address == vm["primary_ip"]
    assert cloud.stop(signal.SIGTERM) == 0
    assert cloud.stderr() == ""


def test_an_unknown_vm_size_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localcloud", "up", "--cloud", "azure", "--node", "Standard_Q9"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("unknown VM size 'Standard_Q9' (not in the bundled Azure size table)")
