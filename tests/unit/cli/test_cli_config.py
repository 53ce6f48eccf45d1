"""``vpccni config`` as a user runs it: a real subprocess with a controlled environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vpccni.config.settings import variables


def vpccni_config(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Only PATH from the caller: no stray AWS_* / WARM_* of the machine running the tests.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run([sys.executable, "-m", "vpccni.cli", "config", *args],
                          env=clean, capture_output=True, text=True, timeout=60)


def test_valid_environment_prints_one_ok_line():
    done = vpccni_config(WARM_IP_TARGET="5", MINIMUM_IP_TARGET="10")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"ok: {len(variables()) - 1} settings valid, 2 set in the environment "
        "(vpccni config --explain shows them)"
    ]


def test_bad_environment_exits_2_with_exactly_one_line_per_bad_variable():
    done = vpccni_config(WARM_IP_TARGET="abc", ENABLE_IPv6="true", AWS_VPC_ENI_MTU="100000",
                         ENABLE_PREFIX_DELEGATION="yes", WARM_ENI_TARGET="2")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "vpccni config: error: WARM_IP_TARGET='abc': expected an integer >= 0",
        "vpccni config: error: ENABLE_PREFIX_DELEGATION='yes': expected one of 1, t, T, TRUE, true, True, "
        "0, f, F, FALSE, false, False",
        "vpccni config: error: AWS_VPC_ENI_MTU='100000': expected an integer from 576 to 9001",
        "vpccni config: error: ENABLE_IPv6='true': expected false or unset (vpccni is IPv4-only)",
    ]


def test_cross_field_error_is_one_line():
    done = vpccni_config(ENABLE_PREFIX_DELEGATION="true", WARM_PREFIX_TARGET="0")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "vpccni config: error: ENABLE_PREFIX_DELEGATION='true': expected false, "
        "or one of WARM_PREFIX_TARGET, WARM_IP_TARGET, MINIMUM_IP_TARGET > 0"
    ]


def test_explain_prints_every_setting_with_its_source():
    done = vpccni_config("--explain", WARM_IP_TARGET="3", AWS_DEFAULT_REGION="eu-west-1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["VARIABLE", "VALUE", "SOURCE", "MEANING"]
    body = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert len(body) == len(variables()) - 1  # AWS_REGION and AWS_DEFAULT_REGION share one row
    assert body["WARM_IP_TARGET"][1:3] == ["3", "env"]
    assert body["AWS_DEFAULT_REGION"][1:3] == ["eu-west-1", "env"]
    assert body["WARM_ENI_TARGET"][1:3] == ["1", "default"]
    assert body["MAX_ENI"][1:3] == ["(unset)", "default"]
    assert lines[-1] == f"{len(body)} settings, 2 from the environment"
    # Columns line up: every source word starts at the same offset.
    offsets = {line.index(" env ") if " env " in line else line.index(" default ") for line in lines[1:-1]}
    assert len(offsets) == 1


def test_explain_json_is_one_object_for_machines():
    done = vpccni_config("--explain", "--json", VPCCNI_MAX_PODS="58")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["ok"] is True
    rows = {row["variable"]: row for row in document["settings"]}
    assert rows["VPCCNI_MAX_PODS"] == {"variable": "VPCCNI_MAX_PODS", "value": "58", "source": "env",
                                       "doc": rows["VPCCNI_MAX_PODS"]["doc"]}
    assert rows["WARM_ENI_TARGET"]["source"] == "default"
    assert all(row["doc"] for row in document["settings"])


def test_json_errors_go_to_stdout_as_well_as_one_line_each_on_stderr():
    done = vpccni_config("--json", MAX_ENI="0", VPCCNI_LOG_FORMAT="xml")
    assert done.returncode == 2
    assert json.loads(done.stdout) == {"ok": False, "problems": [
        {"variable": "MAX_ENI", "value": "0", "accepted": "an integer >= 1"},
        {"variable": "VPCCNI_LOG_FORMAT", "value": "xml", "accepted": "one of json, text"},
    ]}
    assert len(done.stderr.splitlines()) == 2


def test_explain_refuses_a_bad_environment_rather_than_showing_fallbacks():
    done = vpccni_config("--explain", HTTP_TIMEOUT="3")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [
        "vpccni config: error: HTTP_TIMEOUT='3': expected a number of seconds >= 10"
    ]


@pytest.mark.parametrize("bad_flag", ["--explian", "extra"])
def test_usage_error_is_one_line_exit_2(bad_flag):
    done = vpccni_config(bad_flag)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("vpccni config: error:")


def test_explain_table_fits_a_narrow_terminal_and_keeps_units():
    from vpccni.cli.config_cmd import explain_table
    from vpccni.config.settings import Settings

    rows = Settings.from_env({}).explain()
    narrow = explain_table(rows, width=70).splitlines()
    assert all(len(line) <= 70 for line in narrow)
    assert len(narrow) == len(rows) + 2
    wide = {line.split()[0]: line for line in explain_table(rows).splitlines()}
    assert wide["VPCCNI_POOL_LOOP_PERIOD"].endswith("How often the pool loop checks targets. Unit: seconds.")
