"""``vpccni max-pods --cloud azure``: min(250, IP configurations pods can have on the VM's NICs)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def vpccni_max_pods(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpccni.cli", "max-pods", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--vm-size", "Standard_D4s_v5"], 250),
        (["--vm-size", "standard_d2s_v5"], 250),
        (["--vm-size", "Standard_D16s_v5", "--nics", "8"], 248),  # the VM's 256, less 8 NIC primaries
    ],
)
def test_prints_one_integer(args: list[str], expected: int) -> None:
    done = vpccni_max_pods("--cloud", "azure", *args)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{expected}\n", "")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "--cloud azure needs --vm-size, e.g. --vm-size Standard_D4s_v5"),
        (["--vm-size", "Standard_D4s_v6"],
         "unknown VM size 'Standard_D4s_v6' (not among the 8 bundled sizes); did you mean Standard_D4s_v5?"),
        (["--vm-size", "Standard_D4s_v5", "--nics", "3"],
         "Standard_D4s_v5 boots with at most 2 NICs, got --nics 3"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], error: str) -> None:
    done = vpccni_max_pods("--cloud", "azure", *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"vpccni max-pods: error: {error}\n")
