"""aws-node's tag conventions for the interfaces ipamd creates (vpccni.cloud.aws.tags)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from vpccni.cloud.aws.tags import (
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_ENI_OWNER,
    TAG_INSTANCE_ID,
    format_created_at,
    interface_description,
    interface_tags,
    parse_created_at,
)

WHEN = datetime(2024, 5, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))


def test_tags_without_a_cluster():
    assert interface_tags(instance_id="i-1", created_at=WHEN) == {
        TAG_INSTANCE_ID: "i-1",
        TAG_CREATED_AT: "2024-05-01T12:00:00Z",
    }


def test_cluster_name_adds_the_cluster_and_owner_tags():
    tags = interface_tags(instance_id="i-1", created_at=WHEN, cluster_name="prod")
    assert tags[TAG_CLUSTER_NAME] == "prod"
    assert tags[TAG_ENI_OWNER] == "amazon-vpc-cni"


def test_additional_tags_cannot_spoof_ours():
    tags = interface_tags(
        instance_id="i-1",
        created_at=WHEN,
        additional={
            "team": "net",
            "node.k8s.amazonaws.com/instance_id": "i-evil",
            "x.k8s.amazonaws.com/y": "z",
        },
    )
    assert tags == {"team": "net", TAG_INSTANCE_ID: "i-1", TAG_CREATED_AT: "2024-05-01T12:00:00Z"}


def test_created_at_round_trips_and_rejects_garbage():
    assert parse_created_at(format_created_at(WHEN)) == WHEN.astimezone(UTC)
    assert parse_created_at("2024-05-01T12:00:00") == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert parse_created_at("yesterday") is None


def test_description():
    assert interface_description("i-0abc") == "aws-K8S-i-0abc"
