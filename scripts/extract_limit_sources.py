"""Extract the instance-limit DATA of public upstream repositories into ``scripts/limits_sources/``.

``scripts/gen_limits.py`` builds the bundled table from these files and the installed moto; this script
is how they were made and how to refresh them. It reads git directories (no work tree needed) with
``git show COMMIT:PATH`` and keeps data only, never code:

* ``aws_vpc_cni.json``: aws-node's own limits table, github:aws/amazon-vpc-cni-k8s
  ``pkg/vpc/vpc_ip_resource_limit.go`` (generated there from DescribeInstanceTypes in 17 regions, plus
  the types EC2 no longer describes, added by hand): per type the ENI limit of the default network card,
  IPv4 addresses per ENI, the default card, each card's ENI limit, the hypervisor and bare metal.
* ``aws_vpc_cni_eni_max_pods.txt``: the same repository's ``misc/eni-max-pods.txt`` (aws-node's figures).
* ``eks_ami_eni_max_pods.txt``: github:awslabs/amazon-eks-ami ``templates/shared/runtime/eni-max-pods.txt``
  at the last commit that had it (the EKS AMI's node bootstrap figures until it was removed).
* ``eks_ami_instance_info.json``: the same repository's ``nodeadm/internal/kubelet/instance-info.jsonl``
  (what nodeadm computes max pods from today: default-card ENIs and IPv4 addresses per ENI).
* ``moto_history.json``: for each type aws-node knows but the installed moto does not, the newest
  DescribeInstanceTypes item in the history of github:getmoto/moto
  ``moto/ec2/resources/instance_types.json`` (EC2's own answer, captured before moto dropped the type).
* ``fog_aws_vcpus.json``: vCPUs of the types still without any DescribeInstanceTypes item, where
  github:fog/fog-aws ``lib/fog/aws/models/compute/flavors.rb`` lists them (its ``cores``).

Usage::

    python scripts/extract_limit_sources.py --vpc-cni GITDIR --eks-ami GITDIR --moto GITDIR --fog-aws GITDIR

Each file names its repository, path and commit in its header.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SOURCES = Path(__file__).resolve().parent / "limits_sources"

VPC_CNI = "aws/amazon-vpc-cni-k8s"
VPC_CNI_TABLE = "pkg/vpc/vpc_ip_resource_limit.go"
VPC_CNI_MAX_PODS = "misc/eni-max-pods.txt"
EKS_AMI = "awslabs/amazon-eks-ami"
EKS_AMI_MAX_PODS = "templates/shared/runtime/eni-max-pods.txt"
EKS_AMI_INSTANCE_INFO = "nodeadm/internal/kubelet/instance-info.jsonl"
MOTO = "getmoto/moto"
MOTO_TYPES = "moto/ec2/resources/instance_types.json"
FOG_AWS = "fog/fog-aws"
FOG_FLAVORS = "lib/fog/aws/models/compute/flavors.rb"

#: Columns of aws_vpc_cni.json rows.
VPC_CNI_COLUMNS = ["eni_limit", "ipv4_limit", "default_card", "cards", "hypervisor", "bare_metal"]

_GO_ENTRY = re.compile(r'^\t"([^"]+)": \{\n(.*?)^\t\},$', re.M | re.S)
_GO_FIELD = re.compile(r"^\t\t(\w+):\s+(\S+?),?$", re.M)
_GO_CARD = re.compile(r"MaximumNetworkInterfaces:\s+(\d+),\s+NetworkCardIndex:\s+(\d+),")


def git(gitdir: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(gitdir), *args], check=True, capture_output=True,
                          text=True).stdout


def head(gitdir: Path, path: str | None = None) -> str:
    """The newest commit (touching ``path`` if given)."""
    return git(gitdir, "log", "-1", "--format=%H", *(["--", path] if path else [])).strip()


def parse_go_limits(text: str) -> dict[str, list[Any]]:
    """The ``instanceNetworkingLimits`` map of vpc_ip_resource_limit.go, as rows of VPC_CNI_COLUMNS."""
    body = text[text.index("var instanceNetworkingLimits"):]
    types: dict[str, list[Any]] = {}
    for name, block in _GO_ENTRY.findall(body):
        values = dict(_GO_FIELD.findall(block))
        cards = [[int(index), int(enis)] for enis, index in _GO_CARD.findall(block)]
        types[name] = [int(values["ENILimit"]), int(values["IPv4Limit"]),
                       int(values["DefaultNetworkCardIndex"]), cards, json.loads(values["HypervisorType"]),
                       values["IsBareMetal"] == "true"]
    if not types:
        raise ValueError(f"{VPC_CNI_TABLE}: no instance types found")
    return types


def parse_max_pods(text: str) -> dict[str, int]:
    """``type max-pods`` lines of an eni-max-pods.txt (comments and blank lines skipped)."""
    pairs = (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name: int(pods) for name, pods in pairs}


def document(repository: str, path: str, commit: str, note: str, types: Mapping[str, Any],
             **extra: Any) -> str:
    """A source file: a header naming where the data comes from, then one type per line."""
    header = {"repository": f"github:{repository}", "path": path, "commit": commit, "note": note, **extra}
    rows = [f"{json.dumps(n)}:{json.dumps(types[n], separators=(',', ':'))}" for n in sorted(types)]
    return json.dumps(header)[:-1] + ',"types":{\n' + ",\n".join(rows) + "}}\n"


def max_pods_file(repository: str, path: str, commit: str, figures: Mapping[str, int]) -> str:
    lines = [f"# Data of github:{repository} {path} at commit {commit}:",
             "# max pods per instance type, ENIs x (IPv4 per ENI - 1) + 2, as published there.",
             *(f"{name} {figures[name]}" for name in sorted(figures))]
    return "\n".join(lines) + "\n"


def moto_history(gitdir: Path, wanted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The newest item of each wanted type in the history of moto's instance-type data."""
    left, found = set(wanted), {}
    for line in git(gitdir, "log", "--format=%H", "--", MOTO_TYPES, MOTO_TYPES + ".gz").split():
        for path in (MOTO_TYPES, MOTO_TYPES + ".gz"):
            shown = subprocess.run(["git", "-C", str(gitdir), "show", f"{line}:{path}"], capture_output=True)
            if shown.returncode != 0:
                continue
            raw = gzip.decompress(shown.stdout) if path.endswith(".gz") else shown.stdout
            items = json.loads(raw)
            for name in sorted(left):
                item = items.get(name)
                if item and "NetworkInfo" in item and "VCpuInfo" in item:
                    found[name] = {"commit": line, "item": _trim(item)}
                    left.discard(name)
            break
        if not left:
            break
    return found


def _trim(item: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a DescribeInstanceTypes item that InstanceLimits.from_describe reads."""
    network = item["NetworkInfo"]
    keep = ("MaximumNetworkInterfaces", "Ipv4AddressesPerInterface", "Ipv6AddressesPerInterface",
            "MaximumNetworkCards", "DefaultNetworkCardIndex", "NetworkCards")
    trimmed: dict[str, Any] = {"InstanceType": item["InstanceType"],
                               "VCpuInfo": {"DefaultVCpus": item["VCpuInfo"]["DefaultVCpus"]},
                               "BareMetal": item.get("BareMetal", False),
                               "NetworkInfo": {k: network[k] for k in keep if k in network}}
    if "Hypervisor" in item:
        trimmed["Hypervisor"] = item["Hypervisor"]
    cards = trimmed["NetworkInfo"].get("NetworkCards")
    if cards:
        trimmed["NetworkInfo"]["NetworkCards"] = [
            {key: card[key] for key in ("NetworkCardIndex", "MaximumNetworkInterfaces")} for card in cards]
    return trimmed


def fog_vcpus(text: str, wanted: Iterable[str]) -> dict[str, int]:
    """``:cores`` of the wanted ``:id`` entries of fog-aws's flavors list (fog's cores are vCPUs)."""
    found = {}
    for name in wanted:
        match = re.search(r':id\s*=>\s*"' + re.escape(name) + r'",.*?:cores\s*=>\s*(\d+)', text, re.S)
        if match:
            found[name] = int(match.group(1))
    return found


def main(argv: list[str] | None = None) -> int:
    from scripts.gen_limits import installed_moto_items  # the installed moto decides what history is needed

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    for name in ("vpc-cni", "eks-ami", "moto", "fog-aws"):
        parser.add_argument(f"--{name}", type=Path, required=True, metavar="GITDIR")
    args = parser.parse_args(argv)
    SOURCES.mkdir(exist_ok=True)

    commit = head(args.vpc_cni)
    vpc_types = parse_go_limits(git(args.vpc_cni, "show", f"{commit}:{VPC_CNI_TABLE}"))
    (SOURCES / "aws_vpc_cni.json").write_text(document(
        VPC_CNI, VPC_CNI_TABLE, commit,
        "aws-node's instanceNetworkingLimits; rows: " + ", ".join(VPC_CNI_COLUMNS), vpc_types,
        columns=VPC_CNI_COLUMNS))
    (SOURCES / "aws_vpc_cni_eni_max_pods.txt").write_text(max_pods_file(
        VPC_CNI, VPC_CNI_MAX_PODS, commit,
        parse_max_pods(git(args.vpc_cni, "show", f"{commit}:{VPC_CNI_MAX_PODS}"))))

    last = git(args.eks_ami, "log", "-1", "--format=%H", "--diff-filter=D", "--", EKS_AMI_MAX_PODS).strip()
    ami_commit = git(args.eks_ami, "rev-parse", f"{last}^").strip() if last else head(args.eks_ami)
    (SOURCES / "eks_ami_eni_max_pods.txt").write_text(max_pods_file(
        EKS_AMI, EKS_AMI_MAX_PODS, ami_commit,
        parse_max_pods(git(args.eks_ami, "show", f"{ami_commit}:{EKS_AMI_MAX_PODS}"))))
    info_commit = head(args.eks_ami)
    info = [json.loads(line) for line in
            git(args.eks_ami, "show", f"{info_commit}:{EKS_AMI_INSTANCE_INFO}").splitlines() if line.strip()]
    (SOURCES / "eks_ami_instance_info.json").write_text(document(
        EKS_AMI, EKS_AMI_INSTANCE_INFO, info_commit, "nodeadm's instance data; rows: defaultMaxENIs, "
        "ipv4AddressesPerInterface", {i["instanceType"]: [i["defaultMaxENIs"], i["ipv4AddressesPerInterface"]]
                                      for i in info}))

    missing = sorted(set(vpc_types) - set(installed_moto_items()))
    history = moto_history(args.moto, missing)
    (SOURCES / "moto_history.json").write_text(document(
        MOTO, MOTO_TYPES, head(args.moto, MOTO_TYPES), "newest DescribeInstanceTypes item in the file's "
        "history of each aws-node type the installed moto lacks; each row names its own commit", history))

    no_vcpus = [n for n in missing if n not in history]
    fog_commit = head(args.fog_aws)
    (SOURCES / "fog_aws_vcpus.json").write_text(document(
        FOG_AWS, FOG_FLAVORS, fog_commit, "vCPUs (fog's cores) of aws-node types no DescribeInstanceTypes "
        "data describes", fog_vcpus(git(args.fog_aws, "show", f"{fog_commit}:{FOG_FLAVORS}"), no_vcpus)))
    print(f"wrote {SOURCES}: {len(vpc_types)} aws-node types, {len(history)} from moto's history, "
          f"{len(no_vcpus)} without a DescribeInstanceTypes item")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
