"""The bundled instance-limits table holds the data scripts/gen_limits.py makes from its sources: aws-node's
table, the installed moto, moto's history and fog-aws (scripts/limits_sources/)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from scripts import gen_limits
from tests import REPO
from vpccni.config.limits import ROW_FIELDS, TABLE_COLUMNS, InstanceLimits, known_instance_types, lookup


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
    assert "wrote 1418 instance types" in done.stdout
    assert gen_limits.table_drift(gen_limits.BUNDLED.read_text(), out.read_text()) == []


def test_a_change_of_source_is_drift(tmp_path, capsys):
    document = json.loads(gen_limits.BUNDLED.read_text())
    document["types"]["m5.large"][-1] = "MMMMMMM"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(document))
    assert gen_limits.main(["--check", "--output", str(stale)]) == 1
    assert f"gen_limits: {stale}: m5.large: sources 'MMMMMMM' -> 'AAMAAAM'" in capsys.readouterr().err


def test_table_document_shape():
    document = json.loads(gen_limits.BUNDLED.read_text())
    assert document["fields"] == TABLE_COLUMNS == [*ROW_FIELDS, "sources"]
    assert document["source"].startswith("aws-vpc-cni ")
    assert set(document["legend"]) == {"A", "M", "H", "F", "-"}
    for name, row in document["types"].items():
        assert len(row) == len(TABLE_COLUMNS), name
        origin = row[-1]
        assert len(origin) == len(ROW_FIELDS) and set(origin) <= set(document["legend"]), name
        assert all((letter == "-") == (value is None)
                   for letter, value in zip(origin, row, strict=False)), name


def _installed_moto() -> dict[str, Any]:
    spec = importlib.util.find_spec("moto")
    assert spec is not None and spec.submodule_search_locations
    raw_path = Path(spec.submodule_search_locations[0]) / "ec2" / "resources" / "instance_types.json.gz"
    with gzip.open(raw_path, "rt") as stream:
        raw: dict[str, Any] = json.load(stream)
    return raw


def test_every_fact_equals_the_source_it_names():
    # Independent of the generator: read each source here and compare field by field.
    moto = _installed_moto()
    aws = json.loads((gen_limits.SOURCES / "aws_vpc_cni.json").read_text())
    history = json.loads((gen_limits.SOURCES / "moto_history.json").read_text())["types"]
    fog = json.loads((gen_limits.SOURCES / "fog_aws_vcpus.json").read_text())["types"]
    document = json.loads(gen_limits.BUNDLED.read_text())
    assert set(known_instance_types()) == set(moto) | set(aws["types"]) | set(history)
    for name, row in document["types"].items():
        limits = lookup(name)
        assert limits is not None
        described = {"M": moto.get(name), "H": history.get(name, {}).get("item")}
        for field, letter in zip(ROW_FIELDS, row[-1], strict=True):
            value = getattr(limits, field)
            if letter in described:
                item = described[letter]
                assert item is not None, (name, field)
                assert value == getattr(InstanceLimits.from_describe(item), field), (name, field)
            elif letter == "A":
                eni, ipv4, _card, cards, hypervisor, bare_metal = aws["types"][name]
                expected = {"max_enis": eni, "ipv4_per_eni": ipv4, "network_cards": len(cards),
                            "hypervisor": "" if hypervisor == "unknown" else hypervisor,
                            "bare_metal": bare_metal}
                assert value == expected[field], (name, field)
            elif letter == "F":
                assert field == "vcpus" and value == fog[name], name
            else:
                assert value is None, (name, field)
        if name in moto:  # what moto and aws agree on is never rewritten
            assert limits.ipv4_per_eni == moto[name]["NetworkInfo"]["Ipv4AddressesPerInterface"]
            assert limits.vcpus == moto[name]["VCpuInfo"]["DefaultVCpus"]
