"""``vpccni init --self-contained``: a copy of the plugin the HOST runs with its own Python
(vpccni.node.hostcopy). The copied tree is exec'd under the system's bare ``/usr/bin/python3 -I -S``
-- no venv, no site, nothing of vpccni installed -- against a test double of ipamd's socket."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.net.plugin.test_plugin_harness import FakeIpamd, short_tmpdir
from vpccni.node import init as nodeinit
from vpccni.node.hostcopy import (
    HOST_COPY_DIR,
    default_host_libraries,
    host_python_version,
    plugin_tree,
)
from vpccni.node.init import InitFailed, LauncherSpec, NodeInitOptions, run_node_init
from vpccni.node.launcher import package_root

SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_usable() -> bool:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    check = [SYSTEM_PYTHON, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
    return subprocess.run(check, capture_output=True, timeout=30).returncode == 0


needs_system_python = pytest.mark.skipif(
    not _system_python_usable(), reason="needs a system /usr/bin/python3 >= 3.11 (the host under test)")


def init(bin_dir: Path, **spec: object) -> list[nodeinit.Step]:
    launcher = LauncherSpec(**{"python": SYSTEM_PYTHON, "self_contained": True, **spec})  # type: ignore[arg-type]
    return run_node_init(NodeInitOptions(bin_dir=str(bin_dir), launcher=launcher, chain_plugins=(),
                                         sysctls=False))


def fake_python(host: Path, name: str, link: str = "python3") -> str:
    """A host filesystem under ``host`` whose /usr/bin/<link> leads to an executable /usr/bin/<name>."""
    bin_dir = host / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / name).write_text("#!/bin/false\n")
    (bin_dir / name).chmod(0o755)
    if link != name:
        (bin_dir / link).symlink_to(name)
    return f"/usr/bin/{link}"


# --- which files ---------------------------------------------------------------------------------------


def test_the_copied_files_are_derived_from_the_plugins_imports() -> None:
    tree = plugin_tree(package_root())
    plugin_files = {f"plugin/{p.name}" for p in Path(package_root(), "plugin").glob("*.py")}
    assert plugin_files <= set(tree.files)
    assert {"vpccni/__init__.py", "vpccni/wire/protocol.py", "vpccni/errors.py"} <= set(tree.files)
    # the DEL fallback's lazy import, with its own imports and package
    assert {"vpccni/net/__init__.py", "vpccni/net/hostroutes.py", "vpccni/net/nsutil.py"} <= set(tree.files)
    unwanted = {"vpccni/config/settings.py", "vpccni/cloud/__init__.py", "vpccni/net/pod.py"}
    assert not unwanted & set(tree.files)
    assert tree.optional == ("pyroute2",), "pyroute2 is imported only off the start-up path"


def write_plugin(root: Path, main: str, extra: dict[str, str] | None = None) -> Path:
    for rel, text in {"plugin/__init__.py": "", "plugin/main.py": main, "vpccni/__init__.py": "",
                      **(extra or {})}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_third_party_import_on_the_start_up_path_is_refused(tmp_path: Path) -> None:
    root = write_plugin(tmp_path, "from vpccni import helper\n", {"vpccni/helper.py": "import requests\n"})
    with pytest.raises(InitFailed, match=r"vpccni.helper imports requests at start-up"):
        plugin_tree(str(root))


def test_lazy_and_type_checking_imports_are_not_start_up_imports(tmp_path: Path) -> None:
    root = write_plugin(tmp_path, (
        "TYPE_CHECKING = False\n"
        "if TYPE_CHECKING:\n    import requests\n    from vpccni import typed_only\n"
        "def fallback():\n    from .rescue import go\n    return go()\n"
    ), {"plugin/rescue.py": "def go():\n    import pyroute2\n", "vpccni/typed_only.py": ""})
    tree = plugin_tree(str(root))
    assert tree.files == ("plugin/__init__.py", "plugin/main.py", "plugin/rescue.py")
    assert tree.optional == ("pyroute2",)


# --- the host's Python ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "version"), [("python3.11", (3, 11)), ("python3.13", (3, 13))])
def test_the_version_is_read_from_the_interpreters_name_on_the_host(
    tmp_path: Path, name: str, version: tuple[int, int]
) -> None:
    python = fake_python(tmp_path, name)
    assert host_python_version(python, str(tmp_path)) == (version, f"/usr/bin/{name}")


def test_an_absolute_symlink_is_followed_inside_the_host_root(tmp_path: Path) -> None:
    fake_python(tmp_path, "python3.12", link="python3.12")
    (tmp_path / "etc" / "alternatives").mkdir(parents=True)
    (tmp_path / "etc" / "alternatives" / "python3").symlink_to("/usr/bin/python3.12")
    (tmp_path / "usr" / "bin" / "python3").symlink_to("/etc/alternatives/python3")
    assert host_python_version("/usr/bin/python3", str(tmp_path))[0] == (3, 12)


@pytest.mark.parametrize(("setup", "message"), [
    (lambda root: fake_python(root, "python3.9"), r"is 3\.9 \(/usr/bin/python3\.9\); .* needs >= 3\.11"),
    (lambda root: fake_python(root, "python3", link="python3"), r"cannot tell which Python .* versioned"),
    (lambda root: "/usr/bin/python3", r"not an executable file on the host .* needs Python >= 3\.11"),
])
def test_an_unusable_host_python_fails_clearly_and_changes_nothing(
    tmp_path: Path, setup: Callable[[Path], str], message: str
) -> None:
    host = tmp_path / "host"
    host.mkdir()
    python = setup(host)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    with pytest.raises(InitFailed, match=message):
        init(bin_dir, python=python, host_fs_root=str(host))
    assert list(bin_dir.iterdir()) == []


def test_the_host_interpreters_site_directories_are_the_default_libraries(tmp_path: Path) -> None:
    fake_python(tmp_path, "python3.12", link="python3.12")
    for rel in ("usr/lib/python3/dist-packages", "usr/lib64/python3.12/site-packages"):
        (tmp_path / rel).mkdir(parents=True)
    assert default_host_libraries("/usr/bin/python3.12", (3, 12), str(tmp_path)) == (
        "/usr/lib/python3/dist-packages", "/usr/lib64/python3.12/site-packages")


# --- installed, and run by the host's bare interpreter ---------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    with short_tmpdir() as path:
        yield path


def run_plugin(
    argv: list[str], command: str, stdin: Mapping[str, object], **cni: str
) -> subprocess.CompletedProcess[str]:
    env = {"CNI_COMMAND": command, "PATH": "/usr/bin:/bin", **cni}  # nothing else: no PYTHON*, no venv
    return subprocess.run(argv, input=json.dumps(stdin), env=env, capture_output=True, text=True,
                          timeout=30, cwd="/")


@needs_system_python
def test_the_copy_runs_version_and_add_under_a_bare_system_python(short_dir: Path) -> None:
    bin_dir = short_dir / "bin"
    bin_dir.mkdir()
    steps = init(bin_dir, host_fs_root="/")
    tree = plugin_tree(package_root())
    done = [(s.kind, Path(s.target).name) for s in steps]
    assert done == [("installed", tree.digest), ("installed", "vpccni")]
    launcher = (bin_dir / "vpccni").read_text()
    assert launcher.startswith(f"#!{SYSTEM_PYTHON} -IS\n") and package_root() not in launcher
    copied = sorted(str(p.relative_to(bin_dir / HOST_COPY_DIR / tree.digest))
                    for p in (bin_dir / HOST_COPY_DIR / tree.digest).rglob("*.py"))
    assert copied == sorted(tree.files)

    moved = short_dir / "moved"  # the host mounts the bin dir elsewhere: the launcher finds its tree
    bin_dir.rename(moved)
    fake = FakeIpamd(str(short_dir / "ipamd.sock")).start()
    try:
        conf = {"cniVersion": "1.0.0", "name": "hostnet", "type": "vpccni", "ipamdSocket": fake.socket_path,
                "pluginLogFile": str(short_dir / "plugin.log")}
        for argv in ([str(moved / "vpccni")], [SYSTEM_PYTHON, "-I", "-S", str(moved / "vpccni")]):
            version = run_plugin(argv, "VERSION", {"cniVersion": "1.0.0"})
            assert version.returncode == 0, version.stderr
            assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
            add = run_plugin(argv, "ADD", conf, CNI_CONTAINERID="c0ffee", CNI_NETNS="/proc/self/ns/net",
                             CNI_IFNAME="eth0", CNI_ARGS="K8S_POD_NAMESPACE=default;K8S_POD_NAME=p")
            assert add.returncode == 0, add.stdout + add.stderr
            assert json.loads(add.stdout)["ips"][0]["address"] == "10.0.1.10/32"
        assert fake.ops == ["ADD", "ADD"]
    finally:
        fake.stop()


@needs_system_python
def test_a_rerun_changes_nothing_and_an_upgrade_keeps_only_the_previous_tree(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = short_dir / "bin"
    bin_dir.mkdir()
    init(bin_dir)
    assert {s.kind for s in init(bin_dir)} == {"unchanged"}

    digests = [plugin_tree(package_root()).digest]
    release = short_dir / "release"  # later releases of the package: one comment more each
    for n in (1, 2):
        shutil.rmtree(release, ignore_errors=True)
        for package in ("plugin", "vpccni"):
            shutil.copytree(Path(package_root(), package), release / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        with (release / "plugin" / "log.py").open("a") as f:
            f.write(f"# release {n}\n" * n)
        monkeypatch.setattr(nodeinit, "package_root", lambda: str(release))
        steps = init(bin_dir)
        digests.append(plugin_tree(str(release)).digest)
        assert ("installed", digests[-1]) in [(s.kind, Path(s.target).name) for s in steps]
        on_disk = sorted(p.name for p in (bin_dir / HOST_COPY_DIR).iterdir())
        assert on_disk == sorted(digests[-2:]), "the new tree and the one the old launcher named"
        assert digests[-1] in (bin_dir / "vpccni").read_text()
    assert digests[0] not in os.listdir(bin_dir / HOST_COPY_DIR)


@needs_system_python
def test_a_damaged_tree_is_rebuilt(short_dir: Path) -> None:
    bin_dir = short_dir / "bin"
    bin_dir.mkdir()
    init(bin_dir)
    tree = plugin_tree(package_root())
    (bin_dir / HOST_COPY_DIR / tree.digest / "plugin" / "main.py").write_text("raise SystemExit(9)\n")
    steps = init(bin_dir)
    assert [(s.kind, Path(s.target).name) for s in steps][0] == ("installed", tree.digest)
    source = Path(package_root(), "plugin", "main.py").read_bytes()
    assert (bin_dir / HOST_COPY_DIR / tree.digest / "plugin" / "main.py").read_bytes() == source
    assert sorted(os.listdir(bin_dir / HOST_COPY_DIR)) == [tree.digest], "the damaged copy is gone"


def test_the_cli_flag_and_its_conflicts(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VPCCNI_", "HOST_CNI_", "AWS_"))}
    env.update(HOST_CNI_BIN_PATH=str(tmp_path), VPCCNI_CHAIN_PLUGINS="")
    vpccni = [sys.executable, "-m", "vpccni.cli"]
    both = subprocess.run([*vpccni, "init", "--self-contained", "--host-root", "/opt/x", "--skip-sysctls"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert both.returncode == 2 and "--host-root does not apply with --self-contained" in both.stderr
    old = fake_python(tmp_path / "host", "python3.10")
    done = subprocess.run([*vpccni, "init", "--self-contained", "--skip-sysctls", "--host-python", old,
                           "--host-fs-root", str(tmp_path / "host")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "needs >= 3.11 on the node" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["host"], "nothing installed"
