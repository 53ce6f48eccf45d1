"""Node init's file installation with the development launcher (vpccni.node.init), in temporary
directories; no sysctl is touched here (``sysctls=False``) — tests/net/node/test_init_sysctls.py does those
inside a network namespace, test_nodeinit_payload.py installs a payload.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from vpccni.node.init import (
    InitFailed,
    InitInputError,
    NodeInitOptions,
    Step,
    install_atomically,
    run_node_init,
    summary,
)
from vpccni.node.launcher import library_paths, package_root, render_launcher


def fake_plugin(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(f"#!/bin/sh\n# {body}\necho {name}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    fake_plugin(src, "portmap", "portmap v1")
    fake_plugin(src, "bandwidth", "bandwidth v1")
    return src


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    out = tmp_path / "bin"
    out.mkdir()
    return out


def options(bin_dir: Path, source: Path, **kwargs: object) -> NodeInitOptions:
    return NodeInitOptions(
        bin_dir=str(bin_dir),
        plugin_source=str(source),
        sysctls=False,
        **kwargs,  # type: ignore[arg-type]
    )


def opener(path: Path) -> Callable[[], BinaryIO]:
    return lambda: path.open("rb")


def inode_and_mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def test_first_run_installs_the_launcher_and_the_chained_plugins(bin_dir: Path, source: Path) -> None:
    steps = run_node_init(options(bin_dir, source, chain_plugins=("portmap", "bandwidth")))

    assert [(s.kind, Path(s.target).name) for s in steps] == [
        ("installed", "vpccni"),
        ("installed", "portmap"),
        ("installed", "bandwidth"),
    ]
    for name in ("vpccni", "portmap", "bandwidth"):
        assert stat.S_IMODE((bin_dir / name).stat().st_mode) == 0o755
    assert (bin_dir / "portmap").read_bytes() == (source / "portmap").read_bytes()
    expected = render_launcher(sys.executable, package_root(), library_paths())
    assert (bin_dir / "vpccni").read_text() == expected
    assert sorted(os.listdir(bin_dir)) == ["bandwidth", "portmap", "vpccni"]  # no temp files left


def test_a_rerun_changes_nothing_and_says_so(bin_dir: Path, source: Path) -> None:
    run_node_init(options(bin_dir, source))
    before = {p.name: inode_and_mtime(p) for p in bin_dir.iterdir()}

    steps = run_node_init(options(bin_dir, source))

    assert {s.kind for s in steps} == {"unchanged"}
    assert summary(steps) == "nothing to change: the node was already initialized"
    assert {p.name: inode_and_mtime(p) for p in bin_dir.iterdir()} == before  # not even rewritten


def test_only_what_differs_is_reinstalled(bin_dir: Path, source: Path) -> None:
    run_node_init(options(bin_dir, source, chain_plugins=("portmap", "bandwidth")))
    fake_plugin(source, "portmap", "portmap v2")  # an upgraded image
    (bin_dir / "bandwidth").chmod(0o644)  # someone broke the mode

    steps = run_node_init(options(bin_dir, source, chain_plugins=("portmap", "bandwidth")))

    assert [(s.kind, Path(s.target).name) for s in steps] == [
        ("unchanged", "vpccni"),
        ("installed", "portmap"),
        ("installed", "bandwidth"),
    ]
    assert b"portmap v2" in (bin_dir / "portmap").read_bytes()
    assert stat.S_IMODE((bin_dir / "bandwidth").stat().st_mode) == 0o755
    assert summary(steps) == "2 changes, 1 already in place"


def test_temporary_files_of_a_killed_install_are_removed(bin_dir: Path, source: Path) -> None:
    (bin_dir / ".portmap.k1ll3d_x").write_bytes(b"half a plug")  # mkstemp's name: prefix + 8 chars
    (bin_dir / ".portmap.notours").write_bytes(b"")  # another shape: not ours, left alone
    run_node_init(options(bin_dir, source))
    assert sorted(os.listdir(bin_dir)) == [".portmap.notours", "portmap", "vpccni"]


def test_no_chained_plugins_installs_the_launcher_alone(bin_dir: Path, source: Path) -> None:
    run_node_init(options(bin_dir, source, chain_plugins=()))
    assert os.listdir(bin_dir) == ["vpccni"]


def test_a_plugin_that_is_the_source_itself_is_left_alone(bin_dir: Path, source: Path) -> None:
    (bin_dir / "portmap").symlink_to(source / "portmap")
    steps = run_node_init(options(bin_dir, source))
    assert steps[1] == Step("unchanged", str(bin_dir / "portmap"), "it is the source")
    assert (bin_dir / "portmap").is_symlink()


def test_a_reader_never_sees_a_half_written_plugin(tmp_path: Path, bin_dir: Path) -> None:
    # Two big versions installed alternately while another thread reads the destination as fast as it
    # can: every read must be one whole version. A write in place would show mixes and short files.
    versions = [bytes([n]) * (4 << 20) for n in (0xAA, 0x55)]
    for n, data in enumerate(versions):
        (tmp_path / f"v{n}").write_bytes(data)
    dest = bin_dir / "portmap"
    install_atomically(str(dest), opener(tmp_path / "v0"))
    stop = threading.Event()
    torn: list[int] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            data = dest.read_bytes()
            reads += 1
            if data not in versions:
                torn.append(len(data))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(12):
            install_atomically(str(dest), opener(tmp_path / f"v{(n + 1) % 2}"))
    finally:
        stop.set()
        thread.join()
    assert reads > 0
    assert torn == []


def test_a_running_plugin_is_replaced_not_overwritten(tmp_path: Path, bin_dir: Path) -> None:
    src = tmp_path / "src2"
    src.mkdir()
    shutil.copy("/bin/sleep", src / "portmap")
    run_node_init(options(bin_dir, src))
    running = subprocess.Popen([str(bin_dir / "portmap"), "60"])
    try:
        with pytest.raises(OSError) as busy:  # what an in-place write would meet
            open(bin_dir / "portmap", "r+b").close()
        assert busy.value.errno == errno.ETXTBSY
        shutil.copy("/bin/true", src / "portmap")  # the new version

        steps = run_node_init(options(bin_dir, src))

        assert steps[1].kind == "installed"
        assert (bin_dir / "portmap").read_bytes() == Path("/bin/true").read_bytes()
        assert running.poll() is None  # the old binary keeps running from its unlinked inode
    finally:
        running.kill()
        running.wait()


# --- errors: named, and nothing changed ------------------------------------------------------------------


def test_a_missing_bin_dir_is_named(tmp_path: Path, source: Path) -> None:
    with pytest.raises(InitFailed, match=r"HOST_CNI_BIN_PATH .*/absent is not a directory"):
        run_node_init(options(tmp_path / "absent", source))
    assert not (tmp_path / "absent").exists()


def test_a_missing_chained_plugin_is_named_and_nothing_is_installed(bin_dir: Path, source: Path) -> None:
    with pytest.raises(InitFailed, match=rf"chained plugin 'tuning' not found .* in {source}"):
        run_node_init(options(bin_dir, source, chain_plugins=("portmap", "tuning")))
    assert os.listdir(bin_dir) == []


@pytest.mark.parametrize("name", ["../portmap", "vpccni", "", "a/b"])
def test_a_bad_plugin_name_is_bad_input(bin_dir: Path, source: Path, name: str) -> None:
    with pytest.raises(InitInputError, match="chained plugin name"):
        run_node_init(options(bin_dir, source, chain_plugins=(name,)))
    assert os.listdir(bin_dir) == []


def test_a_bad_mac_is_bad_input(bin_dir: Path, source: Path) -> None:
    opts = NodeInitOptions(bin_dir=str(bin_dir), plugin_source=str(source), primary_mac="02:00:zz:00:00:01")
    with pytest.raises(InitInputError, match="--primary-mac: '02:00:zz:00:00:01' is not a MAC"):
        run_node_init(opts)
    assert os.listdir(bin_dir) == []
