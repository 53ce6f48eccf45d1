"""Node tier fixtures: the image (built once per session, by the same path as ``make image``), a podman
session on its storage, and the check that the host is left as it was found."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from scripts.private_podman import PrivatePodman, private_podman
from tests import REPO
from tests.node.support import host_unchanged, image_ref, sweep


@pytest.fixture(scope="session", autouse=True)
def _host_unchanged() -> Iterator[None]:
    """The root namespace's iptables, rules, links and ip_forward, and podman's default state paths, are the
    same after the node tests as before (checked at the end of the session, even after a failure)."""
    with host_unchanged():
        yield


@pytest.fixture(scope="session")
def image() -> str:
    """The image, built (or brought up to date from podman's layer cache) as ``make image`` does; its
    missing tools are installed, never skipped."""
    done = subprocess.run([sys.executable, "-m", "scripts.build_image"], cwd=REPO, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, f"make image failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    print(done.stderr.strip().splitlines()[-1], file=sys.stderr)
    return image_ref()


@pytest.fixture(scope="session")
def podman(image: str) -> Iterator[PrivatePodman]:
    """A podman session on the image's storage (after the build: a session holds the storage's lock)."""
    with private_podman() as pm:
        try:
            yield pm
        finally:
            sweep(pm)
