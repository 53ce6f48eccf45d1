"""Generate vpccni/data/instance_limits.json from moto's bundled DescribeInstanceTypes data.

moto ships every instance type's DescribeInstanceTypes item (``moto/ec2/resources/instance_types.json.gz``);
the local cloud enforces limits from the same data, so the table and the emulated EC2 agree by
construction. Each item goes through :meth:`vpccni.config.limits.InstanceLimits.from_describe`, the parser
ipamd uses at run time for a type missing from the table.

Output: one compact JSON document, one instance type per line so a regeneration diffs readably::

    {"source": "moto 5.2.5", "fields": ["max_enis", ...],
     "types": {
    "a1.2xlarge": [4, 15, 15, "nitro", false, 1, 8],
    ...}}

Usage: ``python scripts/gen_limits.py [--output PATH] [--check]``. ``--check`` writes nothing and exits 1
if the bundled table's *data* differs from what moto's data gives, naming each instance type and field that
changed (tests run the same comparison). The ``source`` label is not data: a moto release that changes no
type's limits is not drift, whatever version it carries.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import importlib.util
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vpccni.config.limits import DATA_FILE, ROW_FIELDS, InstanceLimits

BUNDLED = Path(__file__).resolve().parent.parent / "vpccni" / "config" / DATA_FILE


def moto_instance_types() -> dict[str, Mapping[str, Any]]:
    """moto's DescribeInstanceTypes items by type name, read without importing moto (slow to import)."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("gen_limits: moto is not installed (pip install 'moto[ec2]')")
    path = Path(spec.submodule_search_locations[0]) / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        items: dict[str, Mapping[str, Any]] = json.load(stream)
    return items


def render_table(items: Mapping[str, Mapping[str, Any]], source: str) -> str:
    """The table document for ``items`` (name -> DescribeInstanceTypes item), deterministic."""
    rows = []
    for name in sorted(items):
        limits = InstanceLimits.from_describe(items[name])
        if limits.instance_type != name:
            raise ValueError(f"moto data: item under {name!r} describes {limits.instance_type!r}")
        rows.append(f"{json.dumps(name)}:{json.dumps(limits.to_row(), separators=(',', ':'))}")
    head = json.dumps({"source": source, "fields": ROW_FIELDS}, separators=(",", ":"))[:-1]
    return head + ',"types":{\n' + ",\n".join(rows) + "}}\n"


def generate() -> str:
    return render_table(moto_instance_types(), f"moto {importlib.metadata.version('moto')}")


def table_drift(bundled: str, fresh: str) -> list[str]:
    """What differs between two table documents, ignoring their ``source`` label: one line per change.

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
    args = parser.parse_args(argv)
    table = generate()
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
