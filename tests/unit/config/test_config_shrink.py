"""VPCCNI_SHRINK=aws: the one setting that gives aws-node's exact shrink (window 0, no ENI-freeing margin)."""

from __future__ import annotations

import pytest

from ipamd.reconcile.node import pool_targets
from vpccni.config.limits import require
from vpccni.config.settings import Settings
from vpccni.errors import ConfigError


def test_default_is_ours_window_and_margin():
    s = Settings.from_env({})
    assert (s.shrink, s.effective_scale_down_window) == ("vpccni", 600.0)
    assert pool_targets(s, require("m5.large")).eni_free_margin == 0.5


def test_aws_sets_window_0_and_margin_0():
    s = Settings.from_env({"VPCCNI_SHRINK": "aws"})
    assert s.effective_scale_down_window == 0.0
    assert pool_targets(s, require("m5.large")).eni_free_margin == 0.0
    # the other targets are untouched
    assert pool_targets(s, require("m5.large")).warm_eni_target == 1


def test_window_0_alone_keeps_our_margin():
    s = Settings.from_env({"VPCCNI_SCALE_DOWN_WINDOW": "0"})
    assert s.effective_scale_down_window == 0.0
    assert pool_targets(s, require("m5.large")).eni_free_margin == 0.5


def test_explain_shows_the_setting_and_the_window_it_implies():
    rows = {r.variable: r for r in Settings.from_env({"VPCCNI_SHRINK": "aws"}).explain()}
    assert (rows["VPCCNI_SHRINK"].value, rows["VPCCNI_SHRINK"].source) == ("aws", "env")
    assert "Unit: a word. Default vpccni." in rows["VPCCNI_SHRINK"].doc
    assert rows["VPCCNI_SCALE_DOWN_WINDOW"].value == "0"


@pytest.mark.parametrize("window", ["0", ""])
def test_aws_with_window_0_or_unset_is_accepted(window):
    assert Settings.from_env({"VPCCNI_SHRINK": "aws", "VPCCNI_SCALE_DOWN_WINDOW": window}).shrink == "aws"


def test_aws_with_a_window_is_one_line_naming_the_variable_the_value_and_what_is_accepted():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"VPCCNI_SHRINK": "aws", "VPCCNI_SCALE_DOWN_WINDOW": "300"})
    assert [str(p) for p in caught.value.problems] == [
        "VPCCNI_SCALE_DOWN_WINDOW='300': expected 0 or unset with VPCCNI_SHRINK=aws"]


def test_a_bad_value_is_reported_once():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"VPCCNI_SHRINK": "AWS", "VPCCNI_SCALE_DOWN_WINDOW": "300"})
    assert [str(p) for p in caught.value.problems] == [
        "VPCCNI_SHRINK='AWS': expected one of vpccni, aws"]
