"""The pure side of ipamd's Kubernetes integration: ENIConfig lookup order, taint edits, node facts,
Event de-duplication. Tables of cases; no server."""

from __future__ import annotations

import pytest

from ipamd.k8s.events import EventCorrelator, EventKey, EventTarget, Write
from ipamd.k8s.model import (
    STARTUP_TAINT,
    EniConfigChoice,
    KubeNode,
    eni_config_spec,
    parse_pod_count,
    select_eni_config,
    with_taint,
    without_taint,
)
from vpccni.errors import EniConfigMissing, PermanentError
from vpccni.wire.protocol import NoIpReason

LABEL = "k8s.amazonaws.com/eniConfig"
ANNOTATION = "k8s.amazonaws.com/eniConfig"
EXTERNAL = "vpc.amazonaws.com/externalEniConfig"
ZONE = "topology.kubernetes.io/zone"


@pytest.mark.parametrize(("labels", "annotations", "label_key", "expected", "source_has"), [
    # aws-node's order: external label > annotation > label > "default".
    ({EXTERNAL: "ext", LABEL: "lab"}, {ANNOTATION: "ann"}, LABEL, "ext", EXTERNAL),
    ({LABEL: "lab"}, {ANNOTATION: "ann"}, LABEL, "ann", "annotation"),
    ({LABEL: "lab"}, {}, LABEL, "lab", "label " + LABEL),
    ({}, {}, LABEL, "default", "fallback"),
    # ENI_CONFIG_LABEL_DEF pointing at the zone label, the documented per-AZ setup.
    ({ZONE: "us-west-2a"}, {}, ZONE, "us-west-2a", ZONE),
    ({ZONE: "us-west-2a", LABEL: "ignored"}, {}, ZONE, "us-west-2a", ZONE),
    # Presence decides, as in aws-node: an empty value is chosen (and reported as empty later).
    ({EXTERNAL: ""}, {ANNOTATION: "ann"}, LABEL, "", EXTERNAL),
    # Unrelated metadata never selects anything.
    ({"other": "x"}, {"other": "y"}, LABEL, "default", "fallback"),
])
def test_eni_config_lookup_order(labels, annotations, label_key, expected, source_has) -> None:
    choice = select_eni_config(labels, annotations, label_key=label_key, annotation_key=ANNOTATION)
    assert choice.name == expected
    assert source_has in choice.source


def test_eni_config_spec_reads_subnet_and_security_groups() -> None:
    spec = eni_config_spec("n1", EniConfigChoice("az1", "node label x"),
                           {"spec": {"subnet": "subnet-1", "securityGroups": ["sg-1", "sg-2"]}})
    assert (spec.name, spec.subnet, spec.security_groups) == ("az1", "subnet-1", ("sg-1", "sg-2"))


def test_eni_config_without_security_groups_means_the_primary_enis() -> None:
    assert eni_config_spec("n1", EniConfigChoice("az1", "x"), {"spec": {"subnet": "s"}}).security_groups == ()


@pytest.mark.parametrize(("choice", "obj", "words"), [
    (EniConfigChoice("az1", "node label k8s.amazonaws.com/eniConfig"), None,
     ["'az1'", "does not exist", "node label k8s.amazonaws.com/eniConfig", "create an ENIConfig"]),
    (EniConfigChoice("az1", "node label x"), {"spec": {}}, ["'az1'", "no spec.subnet", "set it"]),
    (EniConfigChoice("az1", "node label x"), {"spec": {"subnet": ""}}, ["no spec.subnet"]),
    (EniConfigChoice("", "node annotation k8s.amazonaws.com/eniConfig"), None,
     ["node annotation k8s.amazonaws.com/eniConfig is empty"]),
])
def test_eni_config_missing_says_what_and_how_to_fix(choice, obj, words) -> None:
    with pytest.raises(EniConfigMissing) as caught:
        eni_config_spec("n1", choice, obj)
    assert isinstance(caught.value, PermanentError)
    assert caught.value.no_ip_reason == NoIpReason.ENI_CONFIG_MISSING
    assert caught.value.name == choice.name
    for word in words:
        assert word in str(caught.value)
    assert "n1" in str(caught.value)


OTHER = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule", "timeAdded": "2024-01-01T00:00:00Z"}


def test_with_taint_appends_and_keeps_others_verbatim() -> None:
    assert with_taint([OTHER], STARTUP_TAINT) == [OTHER, {"key": STARTUP_TAINT.key, "effect": "NoSchedule"}]


def test_with_taint_is_none_when_present_by_key_and_effect() -> None:
    present = [{"key": STARTUP_TAINT.key, "effect": "NoSchedule", "value": "x"}]
    assert with_taint(present, STARTUP_TAINT) is None
    # Same key, other effect: a different taint.
    assert with_taint([{"key": STARTUP_TAINT.key, "effect": "NoExecute"}], STARTUP_TAINT) is not None


def test_without_taint_removes_only_ours() -> None:
    ours = {"key": STARTUP_TAINT.key, "effect": "NoSchedule"}
    assert without_taint([OTHER, ours], STARTUP_TAINT) == [OTHER]
    assert without_taint([ours], STARTUP_TAINT) == []
    assert without_taint([OTHER], STARTUP_TAINT) is None
    assert without_taint([], STARTUP_TAINT) is None


@pytest.mark.parametrize(("spec", "unschedulable"), [
    ({}, False),
    ({"unschedulable": True}, True),
    ({"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}, True),
    ({"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoExecute"}]}, False),
    ({"taints": [OTHER]}, False),
])
def test_unschedulable_from_spec_or_taint(spec, unschedulable) -> None:
    assert KubeNode.from_object({"metadata": {"name": "n"}, "spec": spec}).unschedulable is unschedulable


@pytest.mark.parametrize(("quantity", "pods"), [
    ("110", 110), (29, 29), (" 58 ", 58), ("0", None), (None, None), ("1k", None), ("", None), (True, None),
])
def test_capacity_pods(quantity, pods) -> None:
    assert parse_pod_count(quantity) == pods


def test_node_facts_from_a_sparse_object() -> None:
    facts = KubeNode.from_object({"metadata": {"name": "n"}})
    assert (facts.labels, facts.annotations, facts.taints, facts.max_pods) == ({}, {}, (), None)
    assert not facts.has_startup_taint


@pytest.mark.parametrize("taint", [
    {"key": "vpccni.io/agent-not-ready", "effect": "NoSchedule"},
    {"key": "vpccni.io/agent-not-ready", "value": "true", "effect": "NoSchedule"},  # registered with a value
])
def test_the_startup_taint_is_known_by_key_and_effect(taint) -> None:
    assert KubeNode.from_object({"metadata": {"name": "n"}, "spec": {"taints": [taint]}}).has_startup_taint


def key(message: str = "m") -> EventKey:
    return EventKey(EventTarget.node("n1"), "Warning", "R", message)


def test_correlator_creates_then_patches_with_the_running_count() -> None:
    correlator = EventCorrelator(min_interval=0)
    first = correlator.observe(key(), now=0)
    assert (first.write, first.count) == (Write.CREATE, 1)
    correlator.written(key(), "n1.a", now=0)
    second = correlator.observe(key(), now=0)
    assert (second.write, second.count, second.event_name) == (Write.PATCH, 2, "n1.a")


def test_correlator_holds_writes_within_the_interval_but_keeps_counting() -> None:
    correlator = EventCorrelator(min_interval=60)
    correlator.observe(key(), now=0)
    correlator.written(key(), "n1.a", now=0)
    assert correlator.observe(key(), now=30).write is Write.SKIP
    assert correlator.observe(key(), now=59).write is Write.SKIP
    later = correlator.observe(key(), now=60)
    assert (later.write, later.count) == (Write.PATCH, 4)


def test_correlator_retries_a_create_that_failed() -> None:
    correlator = EventCorrelator()
    correlator.observe(key(), now=0)  # create failed: written() never called
    again = correlator.observe(key(), now=1)
    assert (again.write, again.count) == (Write.CREATE, 2)


def test_correlator_recreates_a_lost_event() -> None:
    correlator = EventCorrelator(min_interval=0)
    correlator.observe(key(), now=0)
    correlator.written(key(), "n1.a", now=0)
    correlator.lost(key())
    assert correlator.observe(key(), now=1).write is Write.CREATE


def test_correlator_separates_messages_and_forgets_the_oldest() -> None:
    correlator = EventCorrelator(min_interval=0, capacity=2)
    for message in ("a", "b", "c"):
        correlator.observe(key(message), now=0)
        correlator.written(key(message), f"n1.{message}", now=0)
    assert correlator.observe(key("c"), now=0).write is Write.PATCH
    assert correlator.observe(key("a"), now=0).write is Write.CREATE  # evicted
