"""``vpccni localcloud up`` and ``vpccni demo`` as a user runs them: real subprocesses, their printed
endpoints used from this process through boto3 and IMDSv2, clean exit on SIGTERM/SIGINT, exit 2 on bad input.
"""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import boto3
import pytest

from tests import REPO
from tests.cloud.localcloud.test_imds import META, Imds
from vpccni.cli import main
from vpccni.demo.endpoints import check

VPCCNI = [sys.executable, "-m", "vpccni.cli"]


class Running:
    """A CLI process whose stdout lines are read by a thread, so a test can wait with a deadline."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*VPCCNI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, pattern: str, timeout_s: float = 60.0) -> list[str]:
        """Lines up to and including the first that matches ``pattern``."""
        seen: list[str] = []
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout_s} s; got {seen}"
                ) from None
            if line is None:
                raise AssertionError(
                    f"process ended before {pattern!r}; stdout {seen}; stderr {self.stderr()}"
                )
            seen.append(line)
            if re.search(pattern, line):
                return seen

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read()

    def stop(self, sig: signal.Signals) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def running() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for proc in started:
        proc.kill()


def ec2_for(endpoint: str, region: str) -> Any:
    return boto3.client(
        "ec2", endpoint_url=endpoint, region_name=region, aws_access_key_id="k", aws_secret_access_key="s"
    )


def test_up_json_line_is_usable_and_sigterm_exits_0(running: list[Running]) -> None:
    cloud = Running("localcloud", "up", "--node", "m5.large", "--node", "t3.medium", "--json")
    running.append(cloud)
    [line] = cloud.read_until(r"^\{")
    info = json.loads(line)
    assert info["region"] == "us-west-2"
    assert [n["instance_type"] for n in info["nodes"]] == ["m5.large", "t3.medium"]

    ec2 = ec2_for(info["ec2_endpoint"], info["region"])
    described = {
        i["InstanceId"]: i["InstanceType"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }
    assert described == {n["instance_id"]: n["instance_type"] for n in info["nodes"]}
    for node in info["nodes"]:
        imds = Imds(node["imds_endpoint"])
        assert imds.get(f"{META}/instance-id") == node["instance_id"]
        assert imds.get(f"{META}/local-ipv4") == node["primary_ip"]
        assert (
            imds.get(f"{META}/network/interfaces/macs/{node['mac']}/subnet-id")
            == node["subnet_id"]
            == info["subnet_id"]
        )
    # The cloud is live: a change made from here shows in the node's IMDS.
    first = info["nodes"][0]
    ec2.assign_private_ip_addresses(
        NetworkInterfaceId=first["primary_eni_id"], SecondaryPrivateIpAddressCount=2
    )
    assert (
        len(
            Imds(first["imds_endpoint"])
            .get(f"{META}/network/interfaces/macs/{first['mac']}/local-ipv4s")
            .splitlines()
        )
        == 3
    )

    assert cloud.stop(signal.SIGTERM) == 0
    assert cloud.stderr() == ""


def test_up_readable_summary_and_sigint_exits_0(running: list[Running]) -> None:
    cloud = Running(
        "localcloud", "up", "--profile", "realistic", "--node", "t3.nano", "--region", "eu-west-1"
    )
    running.append(cloud)
    lines = cloud.read_until(r"^serving")
    text = "\n".join(lines)
    endpoint = re.search(r"EC2 endpoint\s+(http://\S+)", text)
    node = re.search(r"node\s+(i-\w+)\s+t3\.nano\s+\S+\s+IMDS (http://\S+)", text)
    assert endpoint and node, text
    ec2 = ec2_for(endpoint.group(1), "eu-west-1")
    [reservation] = ec2.describe_instances()["Reservations"]
    assert reservation["Instances"][0]["InstanceId"] == node.group(1)
    assert reservation["Instances"][0]["Placement"]["AvailabilityZone"].startswith("eu-west-1")
    assert Imds(node.group(2)).get(f"{META}/placement/region") == "eu-west-1"
    assert cloud.stop(signal.SIGINT) == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VPCCNI, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_unknown_type_is_one_line_and_exit_2_before_anything_starts() -> None:
    result = run_cli("localcloud", "up", "--node", "m5.large", "--node", "x9.bogus", "--json")
    assert result.returncode == 2
    assert result.stdout == ""  # nothing was started, so nothing was announced
    assert result.stderr.splitlines() == [
        "vpccni localcloud up: error: unknown instance type 'x9.bogus' (not in DescribeInstanceTypes)"
    ]


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["localcloud", "up", "--profile", "slowish"], "slowish"),
        (["localcloud", "up", "--region", "mars-north-1"], "mars-north-1"),
        (["localcloud", "up", "--seed", "many"], "many"),
        (["localcloud", "down"], "down"),
        (["localcloud"], "up"),
        (["demo", "--node", "m5.notreal"], "m5.notreal"),
        (["demo", "--profile", "instant"], "instant"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process (the same main() the console script runs): a subprocess per case would cost seconds each.
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code  # type: ignore[assignment]
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert names in err and "error" in err


def test_demo_exit_checks_and_exits_0() -> None:
    result = run_cli("demo", "--endpoints", "--exit")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"EC2 endpoint\s+http://127\.0\.0\.1:\d+", out)
    assert re.search(r"region\s+us-west-2", out)
    assert "AWS_ACCESS_KEY_ID=" in out and "import boto3" in out
    assert re.search(r"IMDS http://127\.0\.0\.1:\d+", out)
    assert len(re.findall(r"^  ok  ", out, re.MULTILINE)) == 2  # boto3 describe + IMDS read


def test_demo_endpoints_work_from_another_process(running: list[Running]) -> None:
    demo = Running("demo", "--endpoints")
    running.append(demo)
    text = "\n".join(demo.read_until(r"^serving"))
    endpoint = re.search(r"EC2 endpoint\s+(http://\S+)", text)
    imds_endpoint = re.search(r"IMDS (http://\S+)", text)
    instance = re.search(r"node\s+(i-\w+)", text)
    assert endpoint and imds_endpoint and instance, text
    # The printed snippet, run as printed (it names the endpoint and dummy credentials itself).
    lines = text.splitlines()
    start = lines.index("  in Python:") + 1
    snippet_lines = []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        snippet_lines.append(line[4:])
    snippet = "\n".join(snippet_lines)
    assert len(snippet_lines) == 3, snippet
    output = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60)
    assert output.stdout.strip() == instance.group(1), (snippet, output.stderr)
    assert Imds(imds_endpoint.group(1)).get(f"{META}/instance-id") == instance.group(1)
    assert demo.stop(signal.SIGTERM) == 0


def test_demo_check_reports_what_does_not_match(localcloud: Any, localcloud_node: Any) -> None:
    node = localcloud_node("m5.large")
    assert check(localcloud.describe()) == []
    wrong = localcloud.describe()
    wrong["nodes"][0].update(instance_type="m5.xlarge", primary_ip="10.9.9.9")
    problems = check(wrong)
    assert len(problems) == 2
    assert problems[0].startswith(f"DescribeInstances({node.instance_id})")
    assert (
        problems[1]
        == f"IMDS of {node.instance_id} says instance-id={node.instance_id} local-ipv4={node.primary_ip}"
    )

    dead = localcloud.describe()
    localcloud.imds(node).stop()
    [problem] = check(dead)
    assert problem.startswith(f"{node.instance_id}: URLError")
