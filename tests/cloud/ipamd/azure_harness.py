"""ipamd as a real process against a local Azure VM: the Azure side of :mod:`tests.cloud.ipamd.ipamd_harness`.

- ``ipamd_azure``: a LocalAzure (fast profile) shared by the tests of one module; tests inject faults or
  change roles on it and ``run_azure_ipamd`` undoes the faults afterwards;
- ``run_azure_ipamd(size, settings, ...) -> AzureIpamd``: a fresh VM and an ipamd for it (VPCCNI_CLOUD=azure,
  its IMDS and managed identity on loopback, ARM over https trusting the local CA); every ipamd it made is
  stopped (by PID) and its directory removed after the test, even on failure;
- :class:`AzureIpamd`: everything :class:`~tests.cloud.ipamd.ipamd_harness.IpamdUnderTest` does (ADD/DEL,
  introspection, restarts, crashes), plus ARM's truth for the VM (``cloud_cidrs``: each NIC's secondary IP
  configurations) and the NIC writes ARM served (``nic_writes``).

Timers are the AWS tier's short ones; the pool's batch and warm target are Azure's defaults (16 and 8)
unless a test says otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.cloud.ipamd.ipamd_harness import FAST_SETTINGS, IpamdUnderTest
from vpccni.localcloud.azure import AzureVm, LocalAzure
from vpccni.testing.ipamd_process import IpamdPaths, azure_ipamd_env, free_tcp_port

PUT_NIC = "PutNetworkInterface"


@dataclass(kw_only=True)
class AzureIpamd(IpamdUnderTest):
    """ipamd on a local Azure VM."""

    azure: LocalAzure
    vm: AzureVm

    def cloud_env(self) -> dict[str, str]:
        return azure_ipamd_env(
            arm_endpoint=self.azure.endpoint,
            ca_file=str(self.azure.ca_file),
            imds_endpoint=self.vm.imds_endpoint,
            token_endpoint=self.vm.imds_endpoint,
            paths=self.paths,
            metrics_port=self.metrics_port,
            settings=self.settings,
        )

    def cloud_cidrs(self) -> dict[str, set[str]]:
        """NIC -> its secondary IP configurations' addresses as /32s, per ARM."""
        return {nic: {f"{a}/32" for a in self.azure.nic_addresses(nic)[1:]} for nic in self.vm.nic_ids}

    def ip_configurations(self) -> int:
        """Secondary IP configurations on the VM's NICs, per ARM."""
        return sum(len(cidrs) for cidrs in self.cloud_cidrs().values())

    def nic_writes(self) -> int:
        """NIC PUTs ARM answered for this VM's ipamd so far (every ipamd of the module counts: read it
        before and after)."""
        counters = self.azure.counters.snapshot().get(PUT_NIC)
        return counters.succeeded if counters is not None else 0


@pytest.fixture(scope="module")
def ipamd_azure() -> Iterator[LocalAzure]:
    with LocalAzure(profile="fast", seed=13) as cloud:
        yield cloud


@pytest.fixture
def run_azure_ipamd(ipamd_azure: LocalAzure) -> Iterator[Callable[..., AzureIpamd]]:
    made: list[AzureIpamd] = []

    def make(size: str = "Standard_D4s_v5", settings: Mapping[str, str] | None = None, *,
             vm: AzureVm | None = None, start: bool = True, crash: str | None = None,
             **vm_kwargs: Any) -> AzureIpamd:
        vm = vm or ipamd_azure.add_vm(size, **vm_kwargs)
        workdir = tempfile.mkdtemp(prefix="vpccni-azipamd-")  # short: socket paths must fit in 108 bytes
        ipamd = AzureIpamd(IpamdPaths(workdir), {**FAST_SETTINGS, **(settings or {})}, free_tcp_port(),
                           azure=ipamd_azure, vm=vm)
        made.append(ipamd)
        if start:
            ipamd.start(crash=crash)
        return ipamd

    try:
        yield make
    finally:
        for ipamd in made:
            ipamd.close()
        ipamd_azure.faults.clear()
