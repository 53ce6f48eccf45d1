"""ipamd's cut-down EC2 model: exactly the operations the AWS provider calls, each as botocore defines it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import botocore.loaders
from botocore import xform_name

from vpccni.cloud.aws import provider
from vpccni.cloud.aws.client import AwsSettings, make_ec2_client
from vpccni.cloud.aws.model import API_VERSION, MODEL_PATH, OPERATIONS, trim


def test_the_shipped_model_is_botocore_s_cut_down_to_the_operations() -> None:
    full = botocore.loaders.Loader().load_service_model("ec2", "service-2", API_VERSION)
    assert json.loads(MODEL_PATH.read_text()) == trim(full), (
        "the installed botocore's EC2 model changed: run python -m scripts.trim_ec2_model")


def test_the_operations_are_every_ec2_call_of_the_provider() -> None:
    called = set(re.findall(r"self\._ec2\.([a-z_]+)\b", Path(provider.__file__).read_text()))
    assert called == {xform_name(op) for op in OPERATIONS}


def test_a_client_has_those_operations_and_no_others() -> None:
    client = make_ec2_client(AwsSettings(region="us-west-2", endpoint_url="http://127.0.0.1:9"))
    assert set(client.meta.service_model.operation_names) == set(OPERATIONS)


def test_trim_keeps_every_shape_an_operation_reaches_and_nothing_else() -> None:
    model = {"metadata": {"x": 1}, "operations": {
        "A": {"input": {"shape": "AIn"}, "errors": [{"shape": "E"}]},
        "B": {"input": {"shape": "Unused"}}},
        "shapes": {"AIn": {"type": "structure", "members": {"l": {"shape": "L"}}},
                   "L": {"type": "list", "member": {"shape": "S"}}, "S": {"type": "string"},
                   "E": {"type": "structure"}, "Unused": {"type": "string"}}}
    trimmed = trim(model, ["A"])
    assert trimmed["metadata"] == {"x": 1} and list(trimmed["operations"]) == ["A"]
    assert set(trimmed["shapes"]) == {"AIn", "L", "S", "E"}
