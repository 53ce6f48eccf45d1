"""The bundled instance-limits table is exactly what scripts/gen_limits.py makes from the installed moto."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from scripts import gen_limits
from vpccni.limits import ROW_FIELDS, InstanceLimits, known_instance_types, lookup

REPO = Path(__file__).resolve().parents[2]


def test_regenerating_the_table_gives_the_bundled_file_byte_for_byte(tmp_path):
    out = tmp_path / "instance_limits.json"
    assert gen_limits.main(["--output", str(out)]) == 0
    assert out.read_bytes() == gen_limits.BUNDLED.read_bytes()


def test_check_mode_detects_drift(tmp_path):
    stale = tmp_path / "stale.json"
    stale.write_text(gen_limits.BUNDLED.read_text().replace('"m5.large":[3,', '"m5.large":[4,'))
    assert gen_limits.main(["--check", "--output", str(stale)]) == 1
    assert gen_limits.main(["--check", "--output", str(gen_limits.BUNDLED)]) == 0


def test_the_script_runs_from_the_command_line(tmp_path):
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_limits.py"), "--output", str(out)],
                          capture_output=True, text=True, check=True)
    assert "wrote 1395 instance types" in done.stdout
    assert out.read_bytes() == gen_limits.BUNDLED.read_bytes()


def test_table_document_shape():
    document = json.loads(gen_limits.BUNDLED.read_text())
    assert document["fields"] == ROW_FIELDS
    assert document["source"].startswith("moto ")
    assert all(len(row) == len(ROW_FIELDS) for row in document["types"].values())


def test_every_table_entry_matches_moto_describe_instance_types():
    # Independent of the generator: read moto's raw items here and compare field by field.
    spec = importlib.util.find_spec("moto")
    assert spec is not None and spec.submodule_search_locations
    raw_path = Path(spec.submodule_search_locations[0]) / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(raw_path, "rt") as stream:
        raw = json.load(stream)
    assert sorted(raw) == known_instance_types()
    for name, item in raw.items():
        limits = lookup(name)
        assert limits == InstanceLimits.from_describe(item)
        assert limits is not None
        network = item["NetworkInfo"]
        assert limits.ipv4_per_eni == network["Ipv4AddressesPerInterface"]
        assert limits.network_cards == network["MaximumNetworkCards"]
        assert limits.max_enis <= network["MaximumNetworkInterfaces"]
        assert limits.vcpus == item["VCpuInfo"]["DefaultVCpus"]
