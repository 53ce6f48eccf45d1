"""The payload builder itself (vpccni.node.payload), run here with this test's interpreter: standard library
only, reproducible, and refusing what would not run on a bare host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.private_podman import PrivatePodman
from tests import REPO
from tests.net.plugin.test_plugin_harness import short_tmpdir
from tests.node.support import extract_payload
from vpccni.node import payload
from vpccni.node.imports import Finder, module_set

pytestmark = pytest.mark.timeout(1800)  # the first test may wait for a cold image build


@pytest.fixture(scope="module")
def launcher(podman: PrivatePodman, image: str) -> Iterator[Path]:
    """The static launcher the image built (the one that ships)."""
    with short_tmpdir() as work:
        yield extract_payload(podman, image, work / "payload") / "vpccni"


def test_the_builder_imports_only_the_standard_library() -> None:
    probe = (f"import sys; sys.path[:0] = [{str(REPO)!r}]; import vpccni.node.payload; "
             "print(' '.join(sorted({m.partition('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) - set(sys.stdlib_module_names) == {"vpccni", "__main__"}


def test_a_build_is_reproducible_and_runs_from_where_it_lands(launcher: Path) -> None:
    with short_tmpdir() as work:  # two payloads of 25 MB: removed at once, not kept as pytest's tmp_path is
        first = payload.build(str(work / "a"), str(launcher), str(REPO))
        second = payload.build(str(work / "b"), str(launcher), str(REPO))
        assert first.tree == second.tree
        trees = work / "a" / payload.TREES
        assert os.readlink(trees / payload.CURRENT) == first.tree  # relative: no path of this machine in it
        assert payload.elf_interpreter(str(work / "a" / payload.LAUNCHER)) is None
        manifest = json.loads((trees / first.tree / payload.MANIFEST).read_text())
        lazy = {"plugin.fallback", "vpccni.net.hostroutes", "vpccni.net.rtnl"}  # the DEL fallback's
        assert lazy <= set(manifest["plugin_modules"])
        assert manifest["not_shipped"] == ["pyroute2"]
        assert not {"_hashlib", "_ssl", "ssl"} & set(manifest["stdlib_modules"])
        (work / "a").rename(work / "moved")  # nothing in it names where it was built
        assert "supportedVersions" in payload.check(str(work / "moved"))


def test_the_launcher_source_spells_the_builders_layout() -> None:
    source = (REPO / "vpccni" / "node" / "launcher.c").read_text()
    flags = re.search(r"python_flags\[\] = \{(.*?)\};", source)
    assert flags is not None and tuple(re.findall(r'"([^"]*)"', flags[1])) == payload.PYTHON_FLAGS
    for path in (f"{payload.TREES}/{payload.CURRENT}", payload.LOADER, payload.INTERPRETER, payload.ENTRY,
                 f"{payload.CHAINED}/"):
        assert f'"{path}"' in source, path


def test_a_dynamically_linked_launcher_is_refused(tmp_path: Path) -> None:
    with pytest.raises(payload.PayloadError, match="dynamically linked"):
        payload.build(str(tmp_path), "/bin/true", str(REPO))


def test_a_missing_first_party_module_is_named(tmp_path: Path) -> None:
    for package in ("plugin", "vpccni"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "plugin" / "main.py").write_text("def main():\n    import vpccni.gone\n")
    finder = Finder(str(tmp_path), payload.stdlib_dirs())
    with pytest.raises(LookupError, match="vpccni.gone is imported by the plugin"):
        module_set(finder, ["plugin.main"])
