"""The node's install: vpccni without the ``localcloud`` extra, from the node lock, in a clean venv.

What a node runs works there (max-pods, config, ipamd), and so does the local Azure (it needs no extra);
what needs the local cloud says in one line what to install; and a user's own pytest run is not broken by
our ``pytest11`` entry point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.check_lock import canonical
from tests import REPO

NODE_LOCK = REPO / "requirements" / "node.txt"
DEV_LOCK = REPO / "requirements" / "dev.txt"


@dataclass(frozen=True)
class Venv:
    root: Path

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(self, *argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=300, cwd=cwd, env=env)

    def pip(self, *argv: str) -> None:
        """Our pip, acting on this venv."""
        done = self.run(sys.executable, "-m", "pip", "--python", self.bin("python"), *argv)
        assert done.returncode == 0, done.stderr


def locked_requirements(lock: Path, names: set[str]) -> str:
    """The blocks (pin plus hashes) of ``names`` cut out of a pip-compile lock, as a requirements file."""
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8"))
    chosen = [b for b in blocks if canonical(b.split("==", 1)[0]) in names]
    assert {canonical(b.split("==", 1)[0]) for b in chosen} == names
    return "\n".join(chosen) + "\n"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv with the node lock and vpccni's wheel, both installed without dependency resolution.

    The venv has no pip of its own (the image's has none either): our pip installs into it (``--python``),
    so every distribution in it is one the node lock names, or vpccni.
    """
    root = tmp_path_factory.mktemp("base")
    wheels, source = root / "wheels", root / "source"
    # Built from a copy: setuptools writes vpccni.egg-info next to pyproject.toml, and one left in the
    # checkout would shadow the editable install's metadata (its entry points) for every later run.
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for name in ("vpccni", "ipamd", "plugin"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(source)], check=True, capture_output=True, timeout=300)
    venv = Venv(root / "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv.root)], check=True, timeout=120)
    for argv in (["--require-hashes", "-r", str(NODE_LOCK)], [str(next(wheels.glob("vpccni-*.whl")))]):
        venv.pip("install", "-q", "--no-deps", *argv)
    return venv


def test_the_base_install_is_exactly_the_node_lock_and_has_no_local_cloud(base):
    done = base.run(base.bin("python"), str(REPO / "scripts" / "check_lock.py"), str(NODE_LOCK))
    assert done.returncode == 0, done.stderr
    base.pip("check")
    for absent in ("moto", "flask", "werkzeug", "sympy", "networkx", "cfn_lint"):
        done = base.run(base.bin("python"), "-c", f"import {absent}")
        assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr, absent


def test_what_a_node_runs_works_without_the_local_cloud(base):
    done = base.run(base.bin("vpccni"), "max-pods", "--instance-type", "m5.large")
    assert (done.returncode, done.stdout) == (0, "29\n"), done.stderr
    done = base.run(base.bin("vpccni"), "config", "--explain")
    assert done.returncode == 0 and "WARM_ENI_TARGET" in done.stdout, done.stderr
    done = base.run(base.bin("vpccni-ipamd"), "--help")
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr
    done = base.run(base.bin("vpccni"), "bench", "rpc", "--help")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argv", [["demo"], ["localcloud", "up"], ["bench", "churn"], ["bench", "add"]])
def test_a_local_cloud_command_exits_2_naming_the_extra(base, argv):
    done = base.run(base.bin("vpccni"), *argv)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"vpccni {' '.join(argv[:2] if argv[0] == 'bench' else argv[:1])}: error:" in done.stderr
    assert "pip install 'vpccni[localcloud]'" in done.stderr


def test_the_local_azure_runs_on_the_base_install(base):
    """The local Azure needs no extra: the base install has the Azure SDK and cryptography."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    proc = subprocess.Popen([base.bin("vpccni"), "localcloud", "up", "--cloud", "azure", "--node",
                             "Standard_D2s_v5", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=30)[1]
        described = json.loads(line)
        assert described["cloud"] == "azure" and described["arm_endpoint"].startswith("https://127.0.0.1:")
        assert [vm["size"] for vm in described["vms"]] == ["Standard_D2s_v5"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_users_own_pytest_run_is_not_broken_by_our_entry_point(base, tmp_path):
    pytest_pins = locked_requirements(DEV_LOCK, {"pytest", "iniconfig", "packaging", "pluggy", "pygments"})
    (tmp_path / "pytest-lock.txt").write_text(pytest_pins)
    base.pip("install", "-q", "--no-deps", "--require-hashes", "-r", str(tmp_path / "pytest-lock.txt"))
    project = tmp_path / "user_project"
    project.mkdir()
    (project / "test_theirs.py").write_text(
        "def test_their_own_code():\n    assert 1 + 1 == 2\n\n"
        "def test_asks_for_our_fixture(ec2_client):\n    pass\n")
    done = base.run(base.bin("python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project),
                    cwd=project)
    assert "1 passed, 1 error" in done.stdout, done.stdout + done.stderr
    assert ("the localcloud fixture needs the local cloud, which this installation does not have; "
            "install it with: pip install 'vpccni[localcloud]'") in done.stdout
