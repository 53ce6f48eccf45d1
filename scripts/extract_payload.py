"""Copy the image's plugin payload out of the image: ``python -m scripts.extract_payload --out DIR``.

The payload (``/opt/vpccni/payload``: the static launcher and ``vpccni.d/``) is what ``vpccni init`` installs
on a node; ``make bench-add`` extracts it so ``vpccni bench add --payload DIR`` times the plugin a node
runs. The copy keeps the ``current`` symbolic link and every mode. Podman runs with the private
configuration of :mod:`scripts.private_podman`, without a network.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import uuid
from pathlib import Path

from scripts.build_image import IMAGE_REPO, version
from scripts.private_podman import DEFAULT_ROOT, PrivatePodman, private_podman

PAYLOAD_IN_IMAGE = "/opt/vpccni/payload"
LABEL = "vpccni-extract=payload"


def extract_payload(pm: PrivatePodman, image: str, dest: Path, label: str = LABEL) -> Path:
    """Copy the image's payload into ``dest`` (created), symlink and modes kept; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    pm.run("run", "--rm", "--pull=never", "--label", label, "--name", f"extract-{uuid.uuid4().hex[:12]}",
           "--volume", f"{dest.resolve()}:/out", image, "cp", "-a", f"{PAYLOAD_IN_IMAGE}/.", "/out/",
           timeout=300)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/extract_payload.py", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="directory to hold the payload (replaced)")
    parser.add_argument("--image", default=f"{IMAGE_REPO}:{version()}",
                        help="the image (default: the one make image builds)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"podman's storage (default {DEFAULT_ROOT})")
    args = parser.parse_args(argv)
    shutil.rmtree(args.out, ignore_errors=True)
    with private_podman(args.root) as pm:
        if not pm.image_exists(args.image):
            raise SystemExit(f"extract_payload: no image {args.image} (make image builds it)")
        extract_payload(pm, args.image, args.out)
    print(f"extract_payload: {args.out}: the payload of {args.image}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
