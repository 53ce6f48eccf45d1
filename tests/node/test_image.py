"""The image: what a node runs works in it, the local cloud is not in it, it carries what init installs."""

from __future__ import annotations

import json

import pytest

from scripts.private_podman import PrivatePodman
from tests.node.support import PAYLOAD_IN_IMAGE, run_in_image

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build


def test_max_pods_in_the_image(podman: PrivatePodman, image: str) -> None:
    done = run_in_image(podman, image, "vpccni", "max-pods", "--instance-type", "m5.large")
    assert (done.returncode, done.stdout) == (0, b"29\n"), done.stderr


def test_ipamd_starts_far_enough_to_print_its_help(podman: PrivatePodman, image: str) -> None:
    done = run_in_image(podman, image, "vpccni-ipamd", "--help")
    assert done.returncode == 0 and b"usage" in done.stdout.lower(), done.stderr


def test_the_local_cloud_is_not_in_the_image(podman: PrivatePodman, image: str) -> None:
    done = run_in_image(podman, image, "python", "-c", "import moto")
    assert done.returncode == 1 and b"ModuleNotFoundError" in done.stderr, done.stderr
    done = run_in_image(podman, image, "vpccni", "demo")
    assert done.returncode == 2 and b"pip install 'vpccni[localcloud]'" in done.stderr, done.stderr


def test_the_image_carries_iptables_and_the_payload_with_the_chained_plugins(
    podman: PrivatePodman, image: str
) -> None:
    script = (
        "set -e; for p in portmap bandwidth tuning loopback; do test -x "
        f"{PAYLOAD_IN_IMAGE}/vpccni.d/current/cni/$p; done; test ! -e /usr/lib/cni; "
        "iptables --version; "
        f"CNI_COMMAND=VERSION {PAYLOAD_IN_IMAGE}/vpccni; "
        "python -c 'import pip' 2>/dev/null && echo pip-in-venv || true"
    )
    done = run_in_image(podman, image, "sh", "-c", script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert "nf_tables" in lines[0]
    assert "1.1.0" in json.loads(lines[1])["supportedVersions"]
    assert "pip-in-venv" not in lines
