"""Generate vpccni/config/data/instance_limits.json from the best source for each fact.

Sources, one letter each in the table (``legend``), in order of precedence:

* ``A`` aws-node's own limits table (``scripts/limits_sources/aws_vpc_cni.json``, extracted from
  github:aws/amazon-vpc-cni-k8s ``pkg/vpc/vpc_ip_resource_limit.go``): the default network card's ENIs,
  IPv4 addresses per ENI, network cards, hypervisor, bare metal. It is what aws-node runs with and what
  aws's and EKS's eni-max-pods.txt are computed from, so where it knows a type its network limits win:
  a drop-in must give aws's numbers (moto's data splits i7ie.48xlarge's ENIs over two cards, EC2's
  answer in aws's table has one card with 15).
* ``M`` the installed moto's DescribeInstanceTypes data (``moto/ec2/resources/instance_types.json``):
  every fact of the types aws's table lacks, and the facts aws's table does not record (IPv6 addresses
  per ENI, vCPUs) for every type it describes.
* ``H`` moto's history (``scripts/limits_sources/moto_history.json``): EC2's DescribeInstanceTypes item
  of a type aws-node still knows but the installed moto has dropped (f1, p3, g4ad, dl1 ...).
* ``F`` fog-aws's flavor list (``scripts/limits_sources/fog_aws_vcpus.json``): vCPUs of the types EC2 no
  longer describes at all (u-*tb1.metal).
* ``-`` no source: the value is null (vCPUs of cr1.8xlarge, for one), never guessed.

Each item goes through :meth:`vpccni.config.limits.InstanceLimits.from_describe`, the parser ipamd uses
at run time for a type missing from the table. The local cloud enforces this same table.

Output: one compact JSON document, one instance type per line so a regeneration diffs readably; the
last column says where each field came from, one legend letter per field::

    {"source": "...", "fields": ["max_enis", ..., "sources"], "legend": {"A": "...", ...},
     "types": {
    "a1.2xlarge": [4, 15, 15, "nitro", false, 1, 8, "AAMAAAM"],
    ...}}

Usage: ``python scripts/gen_limits.py [--output PATH] [--check] [--disagreements]``. ``--check`` writes
nothing and exits 1 if the bundled table's *data* (values and sources) differs from what the sources give,
naming each instance type and field that changed (tests run the same comparison); the ``source`` label
and the legend's wording are not data. ``--disagreements`` lists where moto's data differs from aws's
table (aws's value is taken).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpccni.config.limits import DATA_FILE, ROW_FIELDS, TABLE_COLUMNS, InstanceLimits

BUNDLED = Path(__file__).resolve().parent.parent / "vpccni" / "config" / DATA_FILE
SOURCES = Path(__file__).resolve().parent / "limits_sources"
UNKNOWN = "-"
#: The facts aws-node's table records (InstanceLimits fields); the others come from DescribeInstanceTypes.
AWS_FIELDS = ("max_enis", "ipv4_per_eni", "hypervisor", "bare_metal", "network_cards")


def installed_moto_items() -> dict[str, Mapping[str, Any]]:
    """moto's DescribeInstanceTypes items by type name, read without importing moto (slow to import)."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gen_limits: moto is not installed (pip install 'moto[ec2]')")
    path = Path(spec.submodule_search_locations[0]) / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        items: dict[str, Mapping[str, Any]] = json.load(stream)
    return items


def _read(name: str, directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((directory / name).read_text(encoding="utf-8"))
    return document


def _origin(document: Mapping[str, Any]) -> str:
    return f"{document['repository']} {document['path']} @ {document['commit'][:12]}"


@dataclass(frozen=True)
class Sources:
    """Everything the table is made from."""

    moto: Mapping[str, Mapping[str, Any]]  # installed moto: name -> DescribeInstanceTypes item
    moto_label: str
    aws: Mapping[str, Any]  # aws_vpc_cni.json
    history: Mapping[str, Any]  # moto_history.json
    fog: Mapping[str, Any]  # fog_aws_vcpus.json

    @classmethod
    def load(cls, directory: Path = SOURCES) -> Sources:
        return cls(installed_moto_items(), f"moto {importlib.metadata.version('moto')}",
                   _read("aws_vpc_cni.json", directory), _read("moto_history.json", directory),
                   _read("fog_aws_vcpus.json", directory))

    def legend(self) -> dict[str, str]:
        return {
            "A": f"aws-node's limits table, {_origin(self.aws)}",
            "M": f"{self.moto_label} DescribeInstanceTypes data",
            "H": f"DescribeInstanceTypes item in the history of {_origin(self.history)} (row's commit)",
            "F": f"fog-aws flavors, {_origin(self.fog)}",
            UNKNOWN: "no source: null",
        }


def aws_limits(name: str, row: list[Any], columns: list[str]) -> dict[str, Any]:
    """aws-node's facts of one type, as InstanceLimits fields."""
    values = dict(zip(columns, row, strict=True))
    hypervisor = values["hypervisor"]
    return {
        "max_enis": int(values["eni_limit"]),
        "ipv4_per_eni": int(values["ipv4_limit"]),
        # aws writes "unknown" where EC2 reports no hypervisor (bare metal, retired types); EC2 omits it.
        "hypervisor": "" if hypervisor == "unknown" else str(hypervisor),
        "bare_metal": bool(values["bare_metal"]),
        "network_cards": max(len(values["cards"]), 1),
    }


def merge(sources: Sources) -> dict[str, tuple[InstanceLimits, str]]:
    """Every known type's limits and, per field, the letter of its source."""
    aws_types, columns = sources.aws["types"], sources.aws["columns"]
    history, fog = sources.history["types"], sources.fog["types"]
    merged: dict[str, tuple[InstanceLimits, str]] = {}
    for name in sorted(set(sources.moto) | set(aws_types) | set(history)):
        if name in sources.moto:
            base, letter = InstanceLimits.from_describe(sources.moto[name]), "M"
        elif name in history:
            base, letter = InstanceLimits.from_describe(history[name]["item"]), "H"
        else:
            base, letter = InstanceLimits(name, 0, 0, None, "", False, 0, None), UNKNOWN
        if base.instance_type != name:
            raise ValueError(f"{letter} data: item under {name!r} describes {base.instance_type!r}")
        origin = dict.fromkeys(ROW_FIELDS, letter)
        if name in aws_types:
            base = dataclasses.replace(base, **aws_limits(name, aws_types[name], columns))
            origin.update(dict.fromkeys(AWS_FIELDS, "A"))
        if base.vcpus is None and name in fog:
            base = dataclasses.replace(base, vcpus=int(fog[name]))
            origin["vcpus"] = "F"
        for field in ROW_FIELDS:
            if getattr(base, field) is None:
                origin[field] = UNKNOWN
        if UNKNOWN in (origin[f] for f in AWS_FIELDS):
            raise ValueError(f"{name}: no source for its network limits")
        merged[name] = (base, "".join(origin[f] for f in ROW_FIELDS))
    return merged


def disagreements(sources: Sources) -> list[str]:
    """Where the installed moto's data differs from aws-node's table (aws's value is the one taken)."""
    aws_types, columns = sources.aws["types"], sources.aws["columns"]
    lines = []
    for name in sorted(set(sources.moto) & set(aws_types)):
        moto = InstanceLimits.from_describe(sources.moto[name])
        for field, value in aws_limits(name, aws_types[name], columns).items():
            if getattr(moto, field) != value:
                lines.append(f"{name}: {field} moto {getattr(moto, field)!r}, aws-node {value!r} "
                             "(aws-node's taken)")
    return lines


def render_table(
    merged: Mapping[str, tuple[InstanceLimits, str]], source: str, legend: Mapping[str, str]
) -> str:
    """The table document, deterministic."""
    rows = []
    for name in sorted(merged):
        limits, origin = merged[name]
        rows.append(f"{json.dumps(name)}:{json.dumps([*limits.to_row(), origin], separators=(',', ':'))}")
    head = json.dumps({"source": source, "fields": TABLE_COLUMNS, "legend": legend}, separators=(",", ":"))
    return head[:-1] + ',"types":{\n' + ",\n".join(rows) + "}}\n"


def generate(sources: Sources | None = None) -> str:
    sources = sources or Sources.load()
    label = f"aws-vpc-cni {sources.aws['commit'][:12]}, {sources.moto_label}, moto history, fog-aws"
    return render_table(merge(sources), label, sources.legend())


def table_drift(bundled: str, fresh: str) -> list[str]:
    """What differs between two table documents, ignoring their ``source`` label and legend wording: one
    line per change.

    Lines name the instance type and the field (``m5.large: max_enis 3 -> 4``), or a type that appears or
    disappears, or a change of columns. Empty when the data is the same.
    """
    old, new = json.loads(bundled) if bundled else {}, json.loads(fresh)
    if old.get("fields") != new["fields"]:
        return [f"columns: {old.get('fields')} -> {new['fields']}"]
    fields = new["fields"]
    old_types, new_types = old.get("types", {}), new["types"]
    lines = []
    for name in sorted(set(old_types) | set(new_types)):
        before, after = old_types.get(name), new_types.get(name)
        if before is None:
            lines.append(f"{name}: new type {dict(zip(fields, after, strict=True))}")
        elif after is None:
            lines.append(f"{name}: no longer known")
        else:
            lines += [f"{name}: {field} {b!r} -> {a!r}"
                      for field, b, a in zip(fields, before, after, strict=True) if a != b]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=BUNDLED, help=f"where to write (default {BUNDLED})")
    parser.add_argument("--check", action="store_true", help="compare with --output instead of writing")
    parser.add_argument("--disagreements", action="store_true",
                        help="list where moto's data differs from aws-node's table, write nothing")
    args = parser.parse_args(argv)
    sources = Sources.load()
    if args.disagreements:
        for line in disagreements(sources):
            print(line)
        return 0
    table = generate(sources)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        drift = table_drift(current, table)
        for line in drift:
            sys.stderr.write(f"gen_limits: {args.output}: {line}\n")
        if drift:
            sys.stderr.write(f"gen_limits: {args.output} is out of date ({len(drift)} changes); "
                             "run python scripts/gen_limits.py\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table, encoding="utf-8")
    print(f"wrote {table.count(chr(10)) - 1} instance types to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
