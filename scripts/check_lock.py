"""Prove that an environment holds exactly a lock file's versions: nothing missing, nothing extra, no drift.

``make test`` runs this after installing, so a green run also shows that every installed distribution
came from the lock (``pip check`` beside it shows the set is consistent). The project itself (``vpccni``,
installed editable or from its wheel) is the one distribution a lock does not list.

Usage: ``python scripts/check_lock.py requirements/dev.txt`` (exit 1 and one line per difference).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

# A pin line of a pip-compile lock: ``name==version \`` (hashes follow on continuation lines).
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
PROJECT = "vpccni"


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``Foo_Bar.baz`` and ``foo-bar-baz`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """name -> version of every pin in a pip-compile lock file."""
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def installed() -> dict[str, str]:
    """name -> version of every distribution importable from this interpreter's environment."""
    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    """Human-readable differences between a lock and an environment, sorted by name; empty when equal."""
    out = []
    for name in sorted(set(lock) | set(have)):
        if name == PROJECT:
            continue
        want, got = lock.get(name), have.get(name)
        if want is None:
            out.append(f"{name}=={got} is installed but not in the lock")
        elif got is None:
            out.append(f"{name}=={want} is in the lock but not installed")
        elif want != got:
            out.append(f"{name}: lock says {want}, installed {got}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("lock", type=Path, help="a pip-compile lock file (requirements/*.txt)")
    args = parser.parse_args(argv)
    lock = read_lock(args.lock)
    found = differences(lock, installed())
    for line in found:
        sys.stderr.write(f"check_lock: {args.lock}: {line}\n")
    if not found:
        print(f"check_lock: the environment holds exactly the {len(lock)} versions of {args.lock}")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
