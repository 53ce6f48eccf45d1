"""vpccni tune's pure parts: pods from a journal, the retry interval, settings refused as ipamd refuses
them, candidates, the frontier and the pick, the paste-ready lines; and a small replay in virtual time."""

from __future__ import annotations

import pytest

from ipamd.state.journal import Event, Journal
from vpccni.cli.tune import parse_what_if
from vpccni.errors import ConfigError
from vpccni.sim.forecast import forecast
from vpccni.sim.recommend import Scored, candidates, env_lines, frontier, pick
from vpccni.sim.replay import PodSpan, pod_spans, replay, retry_interval, settings_for


def _journal(events: list[tuple[float, str, str]], settings: dict[str, str] | None = None) -> Journal:
    return Journal({"instance_type": "m5.large", "settings": settings or {}},
                   tuple(Event(1000.0 + t, kind, pod, 0, 0) for t, kind, pod in events))


def test_pods_arrive_at_their_first_add_and_leave_at_their_del() -> None:
    journal = _journal([(0, "D", "old"), (1, "N", "a"), (3, "A", "a"), (4, "A", "b"), (9, "D", "a")])
    assert pod_spans(journal) == [PodSpan("old", 0.0, 0.0), PodSpan("a", 1.0, 9.0), PodSpan("b", 4.0, None)]


def test_the_retry_interval_is_the_node_s_own_or_scaled_from_its_pool_loop() -> None:
    assert retry_interval(_journal([(0, "N", "a"), (10, "N", "a"), (20, "A", "a")])) == 10.0
    assert retry_interval(_journal([(0, "A", "a")])) == 2.0
    compressed = _journal([(0, "A", "a")], {"VPCCNI_POOL_LOOP_PERIOD": "0.05"})
    assert retry_interval(compressed) == pytest.approx(0.02)


def test_a_setting_ipamd_refuses_is_refused_with_its_message() -> None:
    with pytest.raises(ConfigError) as bad:
        settings_for(_journal([]), {"WARM_IP_TARGET": "-1"})
    assert [str(p) for p in bad.value.problems] == ["WARM_IP_TARGET='-1': expected an integer >= 0"]
    env, settings = settings_for(_journal([], {"WARM_IP_TARGET": "2"}), {"WARM_IP_TARGET": "",
                                                                        "WARM_ENI_TARGET": "0"})
    assert env == {"WARM_ENI_TARGET": "0"} and settings.warm_ip_target == 0, "an empty value unsets"


@pytest.mark.parametrize(("spec", "parsed"), [("WARM_IP_TARGET=5", {"WARM_IP_TARGET": "5"}),
                                              ("MINIMUM_IP_TARGET=10, WARM_ENI_TARGET=0",
                                               {"MINIMUM_IP_TARGET": "10", "WARM_ENI_TARGET": "0"})])
def test_what_if_specs(spec: str, parsed: dict[str, str]) -> None:
    assert parse_what_if(spec) == parsed


def test_a_what_if_that_is_not_var_equals_value_is_named() -> None:
    with pytest.raises(ValueError, match="'FOO' is not VAR=VALUE"):
        parse_what_if("FOO")


def _s(idle: float, wait: float, calls: float, never: int = 0, name: str = "x") -> Scored:
    return Scored({"WARM_IP_TARGET": name}, idle, wait, never, calls)


def test_the_frontier_keeps_what_nothing_beats_on_every_count() -> None:
    a, b = _s(5, 9, 60, name="a"), _s(10, 0, 60, name="b")
    c, d = _s(12, 0, 70, name="c"), _s(30, 0, 5, name="d")
    assert frontier([c, a, d, b]) == [a, b, d], "c is beaten by b on every count"
    assert pick([a, b, c, d], max_wait_p99_s=5, max_calls_per_hour=100) == b
    assert pick([a, b, c, d], max_wait_p99_s=5, max_calls_per_hour=10) == d
    assert pick([_s(1, 0, 1, never=3)], max_wait_p99_s=5, max_calls_per_hour=10) is None, "a pod left out"


def test_candidates_unset_the_other_mode_s_variables() -> None:
    found = candidates([3, 5, 8, 20], prefix_delegation=False)
    assert {"WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "", "WARM_ENI_TARGET": "",
            "WARM_PREFIX_TARGET": ""} in found
    assert {"WARM_IP_TARGET": "", "MINIMUM_IP_TARGET": "", "WARM_ENI_TARGET": "0"} in found
    assert any(c.get("MINIMUM_IP_TARGET") == "5" for c in found)


def test_env_lines_are_chart_values() -> None:
    assert env_lines({"WARM_IP_TARGET": "5", "WARM_ENI_TARGET": ""}) == ["env:", '  WARM_IP_TARGET: "5"']


def test_a_replay_runs_the_pool_in_virtual_time() -> None:
    events = [(float(n), "A", f"p{n}") for n in range(20)] + [(600.0 + n, "D", f"p{n}") for n in range(20)]
    journal = _journal(events)
    current = forecast("current", replay(journal, profile="fast"))
    warm2 = forecast("WIT=2", replay(journal, {"WARM_IP_TARGET": "2"}, profile="fast"))
    assert current.pods == warm2.pods == 20 and current.never_addressed == warm2.never_addressed == 0
    assert warm2.idle_mean < current.idle_mean, "WARM_IP_TARGET=2 keeps fewer addresses idle ..."
    assert warm2.mutating_calls > current.mutating_calls, "... and pays for it in EC2 calls"


def test_an_azure_node_s_journal_is_refused_in_one_line(tmp_path, capsys) -> None:
    from vpccni.cli import main

    path = tmp_path / "azure.journal"
    path.write_text('{"journal":"vpccni-churn/1","start":1000.0,"instance_type":"Standard_D4s_v5",'
                    '"settings":{"VPCCNI_CLOUD":"azure"}}\n0 A p1 10 1\n', encoding="utf-8")
    assert main(["tune", "--journal", str(path)]) == 2
    said = capsys.readouterr().err
    assert "is from an Azure node (VPCCNI_CLOUD=azure): vpccni tune replays AWS nodes only" in said
