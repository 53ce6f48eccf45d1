"""Installing the plugin payload into a CNI bin directory (vpccni.node.install, through run_node_init), with
small fake payloads in temporary directories: tree, launcher, ``current`` switch, links, pruning. The real
payload, exec'd, is tests/node's."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from vpccni.node.init import InitFailed, NodeInitOptions, run_node_init, summary
from vpccni.node.install import prune_trees, read_payload


def fake_payload(root: Path, version: str, chained: tuple[str, ...] = ("portmap", "bandwidth")) -> Path:
    """A payload laid out as vpccni.node.payload builds one; its tree is named after ``version``."""
    payload = root / f"payload-{version}"
    name = hashlib.sha256(version.encode()).hexdigest()[:16]
    tree = payload / "vpccni.d" / name
    for directory in ("bin", "lib/python3.11/lib-dynload", "cni", "app/plugin"):
        (tree / directory).mkdir(parents=True)
    (tree / "bin" / "python").write_text(f"interpreter {version}")
    (tree / "bin" / "python").chmod(0o755)
    (tree / "app" / "plugin" / "main.py").write_text(f"# plugin {version}\n")
    for plugin in chained:
        (tree / "cni" / plugin).write_text(f"{plugin} {version}")
        (tree / "cni" / plugin).chmod(0o755)
    (tree / "payload.json").write_text(json.dumps({"tree": name, "chained": list(chained)}))
    (payload / "vpccni").write_text(f"launcher {version}")
    (payload / "vpccni").chmod(0o755)
    (payload / "vpccni.d" / "current").symlink_to(name)
    return payload


def tree_of(payload: Path) -> str:
    return os.readlink(payload / "vpccni.d" / "current")


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    out = tmp_path / "bin"
    out.mkdir()
    return out


def install(bin_dir: Path, payload: Path, chain: tuple[str, ...] = ("portmap",)) -> list[tuple[str, str]]:
    steps = run_node_init(NodeInitOptions(bin_dir=str(bin_dir), payload=str(payload), chain_plugins=chain,
                                          sysctls=False))
    return [(s.kind, os.path.relpath(s.target, bin_dir)) for s in steps]


def listing(directory: Path) -> dict[str, str]:
    """Every entry under ``directory``: a link's target, a file's mode and bytes."""
    out = {}
    for path in sorted(directory.rglob("*")):
        rel = str(path.relative_to(directory))
        if path.is_symlink():
            out[rel] = f"-> {os.readlink(path)}"
        elif path.is_file():
            out[rel] = f"{stat.S_IMODE(path.stat().st_mode):o} {path.read_text()}"
    return out


def test_first_install_copies_the_tree_then_the_launcher_then_switches_then_links(
    tmp_path: Path, bin_dir: Path
) -> None:
    payload = fake_payload(tmp_path, "v1")
    tree = tree_of(payload)

    steps = install(bin_dir, payload, ("portmap", "bandwidth"))

    assert steps == [("installed", f"vpccni.d/{tree}"), ("installed", "vpccni"),
                     ("installed", "vpccni.d/current"), ("installed", "portmap"), ("installed", "bandwidth")]
    assert listing(bin_dir / "vpccni.d" / tree) == listing(payload / "vpccni.d" / tree)  # modes too
    assert (bin_dir / "vpccni").read_bytes() == (payload / "vpccni").read_bytes()
    assert stat.S_IMODE((bin_dir / "vpccni").stat().st_mode) == 0o755
    assert os.readlink(bin_dir / "vpccni.d" / "current") == tree  # relative: any mount point works
    assert os.readlink(bin_dir / "portmap") == os.readlink(bin_dir / "bandwidth") == "vpccni"
    assert sorted(os.listdir(bin_dir)) == ["bandwidth", "portmap", "vpccni", "vpccni.d"]
    assert sorted(os.listdir(bin_dir / "vpccni.d")) == sorted(["current", tree])  # no temporary leftovers
    assert stat.S_IMODE((bin_dir / "vpccni.d" / tree).stat().st_mode) == 0o755


def test_a_rerun_changes_nothing(tmp_path: Path, bin_dir: Path) -> None:
    payload = fake_payload(tmp_path, "v1")
    install(bin_dir, payload)
    before = {p: os.lstat(p).st_ino for p in bin_dir.rglob("*")}

    steps = run_node_init(NodeInitOptions(bin_dir=str(bin_dir), payload=str(payload), sysctls=False))

    assert {s.kind for s in steps} == {"unchanged"}
    assert summary(steps) == "nothing to change: the node was already initialized"
    assert {p: os.lstat(p).st_ino for p in bin_dir.rglob("*")} == before  # nothing rewritten


def test_an_upgrade_keeps_the_previous_tree_and_prunes_older_ones(tmp_path: Path, bin_dir: Path) -> None:
    v1, v2, v3 = (fake_payload(tmp_path, v) for v in ("v1", "v2", "v3"))
    install(bin_dir, v1)

    steps = install(bin_dir, v2)
    assert steps == [("installed", f"vpccni.d/{tree_of(v2)}"), ("installed", "vpccni"),
                     ("installed", "vpccni.d/current"), ("unchanged", "portmap")]
    assert sorted(os.listdir(bin_dir / "vpccni.d")) == sorted(["current", tree_of(v1), tree_of(v2)])

    steps = install(bin_dir, v3)
    assert steps[-1] == ("removed", f"vpccni.d/{tree_of(v1)}")  # a plugin started before v2 is long done
    assert sorted(os.listdir(bin_dir / "vpccni.d")) == sorted(["current", tree_of(v2), tree_of(v3)])
    assert (bin_dir / "vpccni").read_text() == "launcher v3"


def test_going_back_to_the_previous_tree_reuses_it(tmp_path: Path, bin_dir: Path) -> None:
    v1, v2 = fake_payload(tmp_path, "v1"), fake_payload(tmp_path, "v2")
    install(bin_dir, v1)
    install(bin_dir, v2)
    steps = install(bin_dir, v1)  # a rollback
    assert steps[:3] == [("unchanged", f"vpccni.d/{tree_of(v1)}"), ("installed", "vpccni"),
                         ("installed", "vpccni.d/current")]
    assert sorted(os.listdir(bin_dir / "vpccni.d")) == sorted(["current", tree_of(v1), tree_of(v2)])


def test_pruning_never_removes_the_tree_current_names(tmp_path: Path, bin_dir: Path) -> None:
    payload = fake_payload(tmp_path, "v1")
    install(bin_dir, payload)
    assert prune_trees(str(bin_dir), keep=()) == []  # keep nothing: current's tree stays all the same
    assert (bin_dir / "vpccni.d" / tree_of(payload) / "bin" / "python").is_file()


def test_leftovers_of_killed_installs_are_removed_and_strangers_are_left(
    tmp_path: Path, bin_dir: Path
) -> None:
    base = bin_dir / "vpccni.d"
    for leftover in (".tmp-abc123", ".old-xyz"):
        (base / leftover / "bin").mkdir(parents=True)
    (base / "current.tmp-4242").symlink_to("0123456789abcdef")
    (base / "notes").mkdir()  # not a name of ours
    install(bin_dir, fake_payload(tmp_path, "v1"))
    assert sorted(os.listdir(base)) == sorted(["current", "notes", tree_of(tmp_path / "payload-v1")])


def test_a_plugin_file_from_a_development_install_becomes_a_link(tmp_path: Path, bin_dir: Path) -> None:
    for name in ("vpccni", "portmap"):
        (bin_dir / name).write_text("#!/usr/bin/python3 -IS\n")
        (bin_dir / name).chmod(0o755)
    steps = install(bin_dir, fake_payload(tmp_path, "v1"))
    assert ("installed", "portmap") in steps
    assert os.readlink(bin_dir / "portmap") == "vpccni"
    assert (bin_dir / "vpccni").read_text() == "launcher v1"


def test_a_chained_plugin_the_payload_lacks_is_named_and_nothing_changes(
    tmp_path: Path, bin_dir: Path
) -> None:
    payload = fake_payload(tmp_path, "v1", chained=("portmap",))
    with pytest.raises(InitFailed, match=r"chained plugin 'tuning' is not in the plugin payload \(it carries "
                                         r"portmap; VPCCNI_CHAIN_PLUGINS\)"):
        install(bin_dir, payload, ("portmap", "tuning"))
    assert os.listdir(bin_dir) == []


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: (p / "vpccni").unlink(), "has no executable vpccni"),
    (lambda p: (p / "vpccni.d" / "current").unlink(), "vpccni.d/current is not a symbolic link"),
    (lambda p: (p / "vpccni.d" / tree_of(p) / "payload.json").write_text("{}"), "does not describe tree"),
    (lambda p: (p / "vpccni.d" / tree_of(p) / "payload.json").unlink(), "cannot read vpccni.d/"),
])
def test_a_damaged_payload_is_named_and_nothing_changes(
    tmp_path: Path, bin_dir: Path, damage: object, message: str
) -> None:
    payload = fake_payload(tmp_path, "v1")
    damage(payload)  # type: ignore[operator]
    with pytest.raises(InitFailed, match=message):
        install(bin_dir, payload)
    assert os.listdir(bin_dir) == []


def test_read_payload_reports_the_tree_and_its_plugins(tmp_path: Path) -> None:
    payload = fake_payload(tmp_path, "v1", chained=("portmap", "tuning"))
    source = read_payload(str(payload))
    assert (source.tree, source.chained) == (tree_of(payload), ("portmap", "tuning"))
