"""The EC2 API model ipamd's client loads: botocore's own, cut down to the operations ipamd calls.

botocore's EC2 model describes 800+ operations and 4,000+ shapes; loading it costs a client ~24 MiB
and ~0.1 s (a fifth of ipamd's cold start, a third of its memory). ipamd calls twelve operations
(:data:`OPERATIONS`, every ``self._ec2.*`` call of :class:`~vpccni.cloud.aws.provider.AwsProvider`), so
the client is given a model with those operations and exactly the shapes they reach, copied unchanged
from the installed botocore: requests serialise and answers parse exactly as with the full model
(~9 MiB, ~0.05 s). The file ships in ``data/`` (:data:`DATA_DIR`, put first on the client's model search
path); ``scripts/trim_ec2_model.py`` writes it again from the installed botocore, and a test fails when
they differ (a botocore upgrade). :func:`trim` is pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
API_VERSION = "2016-11-15"
MODEL_PATH = DATA_DIR / "ec2" / API_VERSION / "service-2.json"

OPERATIONS = (
    "AssignPrivateIpAddresses",
    "AttachNetworkInterface",
    "CreateNetworkInterface",
    "CreateTags",
    "DeleteNetworkInterface",
    "DescribeInstanceTypes",
    "DescribeInstances",
    "DescribeNetworkInterfaces",
    "DescribeSubnets",
    "DetachNetworkInterface",
    "ModifyNetworkInterfaceAttribute",
    "UnassignPrivateIpAddresses",
)


def trim(model: Mapping[str, Any], operations: Iterable[str] = OPERATIONS) -> dict[str, Any]:
    """``model`` with only ``operations`` and the shapes they reach (inputs, outputs, errors, members)."""
    shapes: dict[str, Any] = {}

    def reach(name: str) -> None:
        if name in shapes:
            return
        shape = model["shapes"][name]
        shapes[name] = shape
        for key in ("member", "key", "value"):
            if key in shape:
                reach(shape[key]["shape"])
        for member in shape.get("members", {}).values():
            reach(member["shape"])

    kept = {}
    for name in operations:
        operation = model["operations"][name]
        kept[name] = operation
        for key in ("input", "output"):
            if key in operation:
                reach(operation[key]["shape"])
        for error in operation.get("errors", ()):
            reach(error["shape"])
    trimmed = {key: value for key, value in model.items() if key not in ("operations", "shapes")}
    trimmed["operations"] = dict(sorted(kept.items()))
    trimmed["shapes"] = dict(sorted(shapes.items()))
    return trimmed
