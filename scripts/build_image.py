"""Build the vpccni image offline: ``make image``.

No registry is needed, on a fresh Debian 12 machine with its apt sources and a package index for pip:

1. the Debian tools (podman, crun, mmdebstrap) are installed if missing (scripts/install-system-deps.sh);
2. the two base images are Debian bookworm root file systems made with mmdebstrap from Debian packages and
   imported into podman: ``vpccni-base`` (python3, iproute2, iptables) and ``vpccni-builder`` (gcc, musl,
   the reference CNI plugins). They are kept: a second run reuses them (``--rebuild-base`` refreshes them,
   e.g. for security updates);
3. the wheels of requirements/node.txt are downloaded on this host (hash-checked) for the base image's
   Python and glibc, and vpccni's own wheel is built beside them (a build step cannot reach the package
   index: the image has no network and does not trust a proxy's CA);
4. ``podman build --network=none --pull=never`` of the Containerfile.

Every podman command runs with the private configuration of :mod:`scripts.private_podman`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.private_podman import DEFAULT_ROOT, PrivatePodman, private_podman

REPO = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
BASE_REF = f"localhost/vpccni-base:{SUITE}"
BUILDER_REF = f"localhost/vpccni-builder:{SUITE}"
IMAGE_REPO = "localhost/vpccni"
WHEELS = REPO / "build" / "image" / "wheels"  # inside the build context: the Containerfile copies them
SELF = REPO / "build" / "image" / "self"  # vpccni's own wheel
APT_TOOLS = ("podman", "crun", "mmdebstrap")
PACKAGES = {
    BASE_REF: ("python3", "python3-venv", "ca-certificates", "iproute2", "iptables"),
    BUILDER_REF: ("gcc", "musl-tools", "containernetworking-plugins"),
}
# Documentation and translations are not needed in an image (the copyright files stay).
_DPKG_OPTIONS = ("path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
                 "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/info/*",
                 "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/lintian/*")
_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def version() -> str:
    for line in (REPO / "pyproject.toml").read_text().splitlines():
        if line.startswith("version = "):
            return line.split('"')[1]
    raise SystemExit("build_image: no version in pyproject.toml")


def log(message: str) -> None:
    print(f"build_image: {message}", file=sys.stderr, flush=True)


def install_tools() -> None:
    """The Debian packages this build needs, only those missing (needs root to install)."""
    subprocess.run([str(REPO / "scripts" / "install-system-deps.sh"), *APT_TOOLS], check=True)


def default_mirror() -> str:
    """This host's Debian sources (its mirror, security and updates suites), else deb.debian.org."""
    for path in _SOURCES:
        if path.is_file() and path.stat().st_size:
            return str(path)
    return "http://deb.debian.org/debian"


def make_base(pm: PrivatePodman, ref: str, mirror: str) -> float:
    """mmdebstrap a minimal root file system with the packages of ``ref`` and import it; seconds taken."""
    started = time.monotonic()
    argv = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES[ref])}",
            *(f"--dpkgopt={o}" for o in _DPKG_OPTIONS), SUITE, "-", mirror]
    quoted = " ".join(_quote(a) for a in argv)
    pm.shell(f"{quoted} | podman import --quiet - {_quote(ref)}")
    return time.monotonic() - started


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def base_target(pm: PrivatePodman) -> tuple[str, str, str]:
    """(python version, glibc version, machine) of the base image: what the wheels must fit."""
    probe = ("import platform, sys; "
             "print('%d.%d' % sys.version_info[:2], platform.libc_ver()[1], platform.machine())")
    out = pm.run("run", "--rm", "--pull=never", BASE_REF, "python3", "-I", "-c", probe).stdout.decode()
    return out.split()[0], out.split()[1], out.split()[2]


def download_wheels(python: str, glibc: str, machine: str) -> None:
    """The node lock's wheels for the image's interpreter (hash-checked) into WHEELS, vpccni's into SELF."""
    major, minor = glibc.split(".")[:2]
    # pip takes explicit platforms literally: list every manylinux the image's glibc can run.
    platforms = [f"--platform=manylinux_{major}_{n}_{machine}" for n in range(int(minor), 4, -1)]
    WHEELS.mkdir(parents=True, exist_ok=True)
    abi = "cp" + python.replace(".", "")
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "download", "--only-binary=:all:", "--no-deps", "--require-hashes",
                    "-r", str(REPO / "requirements" / "node.txt"), "--dest", str(WHEELS),
                    f"--python-version={python}", "--implementation=cp", f"--abi={abi}", *platforms],
                   check=True)
    shutil.rmtree(SELF, ignore_errors=True)
    # Captured: setuptools prints deprecation banners on every build; shown only if the build fails.
    # A fixed SOURCE_DATE_EPOCH: the wheel's bytes then depend on its content only, so an unchanged source
    # gives an unchanged wheel and the build reuses its cached layers (COPY is keyed on content).
    done = subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(SELF),
                           str(REPO)], capture_output=True, text=True,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
    if done.returncode != 0:
        raise SystemExit(f"build_image: building vpccni's wheel failed:\n{done.stdout}{done.stderr}")


def build(pm: PrivatePodman, tags: list[str]) -> None:
    argv = ["build", "--network=none", "--pull=never", "--layers", "--file", str(REPO / "Containerfile"),
            f"--build-arg=BASE={BASE_REF}", f"--build-arg=BUILDER={BUILDER_REF}"]
    for tag in tags:
        argv += ["--tag", tag]
    pm.run(*argv, str(REPO), capture=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/build_image.py", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"podman's storage (default {DEFAULT_ROOT})")
    parser.add_argument("--mirror", default=default_mirror(), help="mmdebstrap's mirror or sources file")
    parser.add_argument("--rebuild-base", action="store_true", help="make the base images again")
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install missing tools")
    parser.add_argument("--save", type=Path, help="also write the image to this oci-archive file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("build_image: needs root (podman's storage and mmdebstrap's root mode)")
    started = time.monotonic()
    if not args.no_install:
        install_tools()
    tag = f"{IMAGE_REPO}:{version()}"
    with private_podman(args.root) as pm:
        for ref in (BASE_REF, BUILDER_REF):
            if args.rebuild_base or not pm.image_exists(ref):
                log(f"making {ref} with mmdebstrap from {args.mirror}")
                log(f"{ref}: {make_base(pm, ref, args.mirror):.0f} s")
            else:
                log(f"reusing {ref}")
        python, glibc, machine = base_target(pm)
        log(f"wheels for CPython {python}, glibc {glibc}, {machine}")
        download_wheels(python, glibc, machine)
        build(pm, [tag, f"{IMAGE_REPO}:latest"])
        size = pm.image_size(tag)
        if args.save:
            args.save.unlink(missing_ok=True)
            pm.run("save", "--quiet", "--format", "oci-archive", "--output", str(args.save.resolve()), tag)
    log(f"{tag}: {size / 1e6:.0f} MB, built in {time.monotonic() - started:.0f} s (podman root {args.root})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
