"""The bundled instance-limits table holds the data scripts/gen_limits.py makes from the installed moto."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from scripts import gen_limits
from tests import REPO
from vpccni.config.limits import ROW_FIELDS, InstanceLimits, known_instance_types, lookup


def test_regenerating_the_table_gives_the_bundled_data(tmp_path):
    out = tmp_path / "instance_limits.json"
    assert gen_limits.main(["--output", str(out)]) == 0
    assert gen_limits.table_drift(gen_limits.BUNDLED.read_text(), out.read_text()) == []
    assert gen_limits.main(["--check", "--output", str(gen_limits.BUNDLED)]) == 0


def _relabelled(source: str) -> str:
    document = json.loads(gen_limits.BUNDLED.read_text())
    assert document["source"] != source
    rest = gen_limits.BUNDLED.read_text().split(',"fields"', 1)[1]
    return json.dumps({"source": source})[:-1] + ',"fields"' + rest


def test_a_new_tool_version_that_changes_no_limits_is_not_drift(tmp_path, capsys):
    relabelled = tmp_path / "relabelled.json"
    relabelled.write_text(_relabelled("moto 99.0.0"))
    assert json.loads(relabelled.read_text())["source"] == "moto 99.0.0"
    assert gen_limits.main(["--check", "--output", str(relabelled)]) == 0
    assert capsys.readouterr().err == ""


def test_a_data_change_is_reported_by_instance_type_and_field(tmp_path, capsys):
    document = json.loads(gen_limits.BUNDLED.read_text())
    document["types"]["m5.large"][ROW_FIELDS.index("max_enis")] = 4
    document["types"]["c5.xlarge"][ROW_FIELDS.index("ipv4_per_eni")] = 99
    del document["types"]["t3.nano"]
    document["types"]["x9.imaginary"] = document["types"]["m5.large"]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(document))
    assert gen_limits.main(["--check", "--output", str(stale)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"gen_limits: {stale}: m5.large: max_enis 4 -> 3" in err
    assert f"gen_limits: {stale}: c5.xlarge: ipv4_per_eni 99 -> 15" in err
    assert any(line.startswith(f"gen_limits: {stale}: t3.nano: new type {{'max_enis': 2,") for line in err)
    assert f"gen_limits: {stale}: x9.imaginary: no longer known" in err
    assert err[-1].endswith("is out of date (4 changes); run python scripts/gen_limits.py")


def test_the_script_runs_from_the_command_line(tmp_path):
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_limits.py"), "--output", str(out)],
                          capture_output=True, text=True, check=True)
    assert "wrote 1395 instance types" in done.stdout
    assert gen_limits.table_drift(gen_limits.BUNDLED.read_text(), out.read_text()) == []


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
