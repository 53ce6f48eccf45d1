"""Write vpccni's cut-down EC2 model (vpccni/cloud/aws/data) from the installed botocore's.

Usage: ``python -m scripts.trim_ec2_model`` after a botocore upgrade (a unit test fails until then).
"""

from __future__ import annotations

import json

from vpccni.cloud.aws.model import API_VERSION, MODEL_PATH, trim


def main() -> int:
    import botocore.loaders

    full = botocore.loaders.Loader().load_service_model("ec2", "service-2", API_VERSION)
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    MODEL_PATH.write_text(json.dumps(trim(full), indent=1, sort_keys=True) + "\n")
    print(f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
