"""``vpccni max-pods`` as kubelet bootstrap scripts run it: one integer on stdout, or one error line."""

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
        (["--instance-type", "t3.small"], 11),
        (["--instance-type", "t3.medium"], 17),
        (["--instance-type", "m5.large"], 29),
        (["--instance-type", "m5.xlarge"], 58),
        (["--instance-type", "c5.4xlarge"], 234),
        (["--instance-type", "m5.24xlarge"], 737),
        (["--instance-type", "m5.large", "--prefix-delegation"], 434),
        (["--instance-type", "m5.large", "--prefix-delegation", "--cni-version-cap"], 110),
        (["--instance-type", "m5.large", "--custom-networking"], 20),
        (["--instance-type", "m5.large", "--max-eni", "2"], 20),
        (["--instance-type", "m5.24xlarge", "--cni-version-cap"], 250),
        # types EC2's DescribeInstanceTypes (and so moto) no longer lists: aws-node's table has them
        (["--instance-type", "g4ad.xlarge"], 8),
        (["--instance-type", "u-6tb1.metal"], 147),
        (["--instance-type", "u-6tb1.metal", "--cni-version-cap"], 147),  # 448 vCPUs (fog-aws): cap 250
        (["--instance-type", "cr1.8xlarge"], 234),
        # moto splits these over two cards; aws-node's table (EC2's data) has one card with 15 / 24 ENIs
        (["--instance-type", "i7ie.48xlarge"], 737),
        (["--instance-type", "i8ge.metal-48xl"], 1178),
    ],
)
def test_prints_one_integer(args, expected):
    done = vpccni_max_pods(*args)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{expected}\n", "")


def test_unknown_type_is_one_line_exit_2_with_a_suggestion():
    done = vpccni_max_pods("--instance-type", "m5.larg")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "vpccni max-pods: error: unknown instance type 'm5.larg' (not among the 1418 bundled types); "
        "did you mean m5.large?"
    ]


def test_the_cap_on_a_type_whose_vcpus_no_source_has_is_one_line_exit_2():
    done = vpccni_max_pods("--instance-type", "cr1.8xlarge", "--cni-version-cap")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "vpccni max-pods: error: the vCPUs of cr1.8xlarge are in none of the bundled table's sources, "
        "and --cni-version-cap needs them (without it the figure is known)"
    ]


@pytest.mark.parametrize(
    ("args", "phrase"),
    [
        ([], "the following arguments are required: --instance-type"),
        (["--instance-type", "m5.large", "--max-eni", "0"],
         "argument --max-eni: expected an integer >= 1, got '0'"),
        (["--instance-type", "m5.large", "--max-eni", "two"], "argument --max-eni: expected an integer >= 1"),
        (["--instance-type", "m5.large", "--ipv6"], "unrecognized arguments: --ipv6"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(args, phrase):
    done = vpccni_max_pods(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert phrase in done.stderr
