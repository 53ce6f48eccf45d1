"""``vpccni demo --endpoints``: the local cloud with its nodes, and proof that a user can point boto3 at it.

It prints the EC2 endpoint, region, dummy credentials, each node's IMDS endpoint and a three-line boto3
snippet; then checks them the way a user would: DescribeInstances through boto3 must return each node, and
the node's IMDS (IMDSv2: token first) must report the same instance id and primary address. Then it serves
until Ctrl-C/SIGTERM, or exits right away with ``--exit`` (status 0 when the checks passed, 1 if not).
No network namespaces, so no root needed. (This was version 1 of ``vpccni demo``.)
"""

from __future__ import annotations

import argparse
import sys
import urllib.request
from typing import Any

from vpccni.console import stop_on_signals

DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"  # the local cloud accepts any credentials; these are just explicit


def imds_get(endpoint: str, path: str, *, timeout_s: float = 5.0) -> str:
    """One IMDSv2 read, as an SDK does it: PUT for a token, then GET with it."""
    put = urllib.request.Request(
        f"{endpoint}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    )
    with urllib.request.urlopen(put, timeout=timeout_s) as resp:
        token = resp.read().decode()
    get = urllib.request.Request(f"{endpoint}{path}", headers={"X-aws-ec2-metadata-token": token})
    with urllib.request.urlopen(get, timeout=timeout_s) as resp:
        return str(resp.read().decode())


def banner(description: dict[str, Any]) -> str:
    endpoint, region = description["ec2_endpoint"], description["region"]
    lines = [
        "vpccni local cloud is up (EC2 semantics on moto, one IMDSv2 per node)",
        "",
        f"  EC2 endpoint   {endpoint}",
        f"  region         {region}",
        f"  credentials    any, e.g. AWS_ACCESS_KEY_ID={DUMMY_ACCESS_KEY} "
        f"AWS_SECRET_ACCESS_KEY={DUMMY_SECRET_KEY}",
    ]
    for node in description["nodes"]:
        lines.append(
            f"  node           {node['instance_id']} ({node['instance_type']}, {node['primary_ip']}) "
            f"IMDS {node['imds_endpoint']}"
        )
    first_imds = description["nodes"][0]["imds_endpoint"] if description["nodes"] else ""
    lines += [
        "",
        "  in a shell:",
        f"    export AWS_ENDPOINT_URL_EC2={endpoint} AWS_DEFAULT_REGION={region} "
        f"AWS_ACCESS_KEY_ID={DUMMY_ACCESS_KEY} AWS_SECRET_ACCESS_KEY={DUMMY_SECRET_KEY}",
        f"    export AWS_EC2_METADATA_SERVICE_ENDPOINT={first_imds}",
        "",
        "  in Python:",
        "    import boto3",
        f'    ec2 = boto3.client("ec2", endpoint_url="{endpoint}", region_name="{region}",'
        f' aws_access_key_id="{DUMMY_ACCESS_KEY}", aws_secret_access_key="{DUMMY_SECRET_KEY}")',
        '    print(ec2.describe_instances()["Reservations"][0]["Instances"][0]["InstanceId"])',
    ]
    return "\n".join(lines)


def check(description: dict[str, Any]) -> list[str]:
    """Use the printed endpoints the way a user would; the problems found (empty = all good)."""
    import boto3

    ec2 = boto3.client(
        "ec2",
        endpoint_url=description["ec2_endpoint"],
        region_name=description["region"],
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
    )
    problems: list[str] = []
    for node in description["nodes"]:
        try:
            check_node(ec2, node, problems)
        except Exception as exc:  # the demo's whole point is to report what does not work, not to crash
            problems.append(f"{node['instance_id']}: {type(exc).__name__}: {exc}")
    return problems


def check_node(ec2: Any, node: dict[str, Any], problems: list[str]) -> None:
    """Check one node through boto3 and its IMDS; print an ok line per check, append problems."""
    iid = node["instance_id"]
    instances = [i for r in ec2.describe_instances(InstanceIds=[iid])["Reservations"] for i in r["Instances"]]
    if [(i["InstanceId"], i["InstanceType"]) for i in instances] != [(iid, node["instance_type"])]:
        problems.append(f"DescribeInstances({iid}) returned {instances!r}")
    else:
        sys.stdout.write(
            f"  ok  boto3 DescribeInstances: {iid} {node['instance_type']} {instances[0]['State']['Name']}\n"
        )
    seen_id = imds_get(node["imds_endpoint"], "/latest/meta-data/instance-id")
    seen_ip = imds_get(node["imds_endpoint"], "/latest/meta-data/local-ipv4")
    if (seen_id, seen_ip) != (iid, node["primary_ip"]):
        problems.append(f"IMDS of {iid} says instance-id={seen_id} local-ipv4={seen_ip}")
    else:
        sys.stdout.write(
            f"  ok  IMDSv2 {node['imds_endpoint']}: instance-id {seen_id}, local-ipv4 {seen_ip}\n"
        )


def run_endpoints(prog: str, args: argparse.Namespace) -> int:
    """Serve the local cloud with ``args.node`` nodes, print and check its endpoints (see the docstring)."""
    from vpccni.localcloud.cloud import LocalCloud

    with (
        stop_on_signals() as stop,
        LocalCloud(region=args.region, profile=args.profile, seed=args.seed) as cloud,
    ):
        cloud.scenario(args.node)
        description = cloud.describe()
        sys.stdout.write(banner(description) + "\n\nchecking what is printed above works:\n")
        sys.stdout.flush()
        problems = check(description)
        for problem in problems:
            sys.stderr.write(f"{prog}: check failed: {problem}\n")
        if problems:
            return 1
        if args.exit:
            sys.stdout.write("all checks passed; shutting down (--exit)\n")
            return 0
        sys.stdout.write("serving; Ctrl-C stops\n")
        sys.stdout.flush()
        while not stop.wait(1.0):
            pass
    return 0
