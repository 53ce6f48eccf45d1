"""Install the plugin payload (:mod:`vpccni.node.payload`) into the host's CNI bin directory.

The image carries the payload at ``/opt/vpccni/payload``: the static launcher ``vpccni``, and
``vpccni.d/current`` naming the tree ``vpccni.d/<tree>`` that holds the interpreter, its libraries, the
plugin and the reference plugins we chain. Installing it, in this order, so that a runtime exec'ing a
plugin at any moment runs one whole tree:

1. the tree: copied into ``vpccni.d/.tmp-*`` beside its final place, fsync'd, and renamed to
   ``vpccni.d/<tree>``; skipped when that directory is there already (a tree appears only by that rename,
   and its name is a digest of its content: a present tree is this tree, whole);
2. the launcher ``vpccni``: written to a temporary file and renamed over the old one. It is the same
   program for every tree (it reads ``current`` when it starts), so an old tree runs with it as well;
3. ``vpccni.d/current``: a new relative symbolic link renamed over the old one, the switch itself. The
   launcher reads it once per exec, so an exec runs the old tree or the new one, never a mix;
4. each chained plugin (``portmap``, ``bandwidth`` ...): a symbolic link to ``vpccni``; the launcher,
   run by that name, runs the tree's copy of that plugin. After the switch, so a link never names a
   plugin the running tree lacks;
5. trees other than the new one and the previous one are removed, and leftovers of killed installs.
   The previous tree stays: a plugin exec'd just before the switch may still be importing from it (the
   DEL fallback imports its netlink modules lazily). The tree ``current`` names is never removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from vpccni.fsutil import fsync_dir
from vpccni.node.files import InitFailed, Step, install_atomically, link_atomically
from vpccni.node.payload import CURRENT, LAUNCHER, MANIFEST, TREES

_TREE = re.compile(r"^[0-9a-f]{16}$")
_LEFTOVER = re.compile(r"^(\.tmp-|\.old-|current\.tmp-)")


@dataclass(frozen=True)
class PayloadSource:
    """A payload found intact where init reads it (nothing written yet)."""

    directory: str
    tree: str
    chained: tuple[str, ...]  # the reference plugins the tree carries

    @property
    def tree_path(self) -> str:
        return os.path.join(self.directory, TREES, self.tree)

    @property
    def launcher(self) -> str:
        return os.path.join(self.directory, LAUNCHER)

    def open_launcher(self) -> BinaryIO:
        return open(self.launcher, "rb")  # the caller (install_atomically) closes it


def read_payload(directory: str) -> PayloadSource:
    """The payload in ``directory``; InitFailed naming what is missing or inconsistent."""
    where = f"the plugin payload in {directory}"
    launcher = os.path.join(directory, LAUNCHER)
    if not os.path.isfile(launcher) or not os.access(launcher, os.X_OK):
        raise InitFailed(f"{where} has no executable {LAUNCHER} (is this the vpccni image?)")
    try:
        tree = os.readlink(os.path.join(directory, TREES, CURRENT))
    except OSError as exc:
        raise InitFailed(f"{where}: {TREES}/{CURRENT} is not a symbolic link: {exc.strerror}") from exc
    if not _TREE.match(tree):
        raise InitFailed(f"{where}: {TREES}/{CURRENT} names {tree!r}, not a tree")
    try:
        with open(os.path.join(directory, TREES, tree, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise InitFailed(f"{where}: cannot read {TREES}/{tree}/{MANIFEST}: {exc}") from exc
    chained = manifest.get("chained") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("tree") != tree or not isinstance(chained, list):
        raise InitFailed(f"{where}: {TREES}/{tree}/{MANIFEST} does not describe tree {tree}")
    return PayloadSource(directory, tree, tuple(str(name) for name in chained))


def check_chain(source: PayloadSource, chain: Sequence[str]) -> None:
    """Every chained plugin asked for is in the payload's tree."""
    missing = [name for name in chain if name not in source.chained]
    if missing:
        raise InitFailed(f"chained plugin {missing[0]!r} is not in the plugin payload (it carries "
                         f"{', '.join(source.chained) or 'none'}; VPCCNI_CHAIN_PLUGINS)")


def current_tree(bin_dir: str) -> str | None:
    """The tree ``bin_dir/vpccni.d/current`` names (None: none, or not a tree's name)."""
    try:
        name = os.readlink(os.path.join(bin_dir, TREES, CURRENT))
    except OSError:
        return None
    return name if _TREE.match(name) else None


def install_payload(source: PayloadSource, bin_dir: str, chain: Sequence[str]) -> list[Step]:
    """Steps 1-5 of the module docstring; the steps taken, in order."""
    base = os.path.join(bin_dir, TREES)
    try:
        os.makedirs(base, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise InitFailed(f"cannot create {base}: {exc.strerror}") from exc
    previous = current_tree(bin_dir)
    steps = [_install_tree(source, base)]
    steps.append(install_atomically(os.path.join(bin_dir, LAUNCHER), source.open_launcher))
    steps.append(_switch_current(base, source.tree, previous))
    steps += [link_atomically(os.path.join(bin_dir, name), LAUNCHER) for name in chain]
    steps += prune_trees(bin_dir, keep=(source.tree, previous))
    return steps


def _install_tree(source: PayloadSource, base: str) -> Step:
    dest = os.path.join(base, source.tree)
    if os.path.isdir(dest):
        return Step("unchanged", dest)
    building = tempfile.mkdtemp(prefix=".tmp-", dir=base)
    try:
        shutil.copytree(source.tree_path, building, symlinks=True, dirs_exist_ok=True)
        for directory, _, files in os.walk(building):
            for name in files:
                fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.chmod(directory, 0o755)  # mkdtemp made it 0700: the runtime may run as another user
            fsync_dir(directory)
        os.rename(building, dest)
        fsync_dir(base)
    except OSError as exc:
        raise InitFailed(f"cannot install the plugin tree {dest}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)
    count = sum(len(names) for _, _, names in os.walk(dest))
    return Step("installed", dest, f"{count} files")


def _switch_current(base: str, tree: str, previous: str | None) -> Step:
    link = os.path.join(base, CURRENT)
    if previous == tree:
        return Step("unchanged", link, f"-> {tree}")
    temp = f"{link}.tmp-{os.getpid()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        os.symlink(tree, temp)
        os.replace(temp, link)
        fsync_dir(base)
    except OSError as exc:
        raise InitFailed(f"cannot switch {link} to {tree}: {exc.strerror or exc}") from exc
    return Step("installed", link, f"-> {tree}" + (f", was {previous}" if previous else ""))


def prune_trees(bin_dir: str, keep: Iterable[str | None]) -> list[Step]:
    """Remove the trees not in ``keep`` and leftovers of killed installs; whatever ``current`` names is
    kept in any case (it is what the launcher runs)."""
    base = os.path.join(bin_dir, TREES)
    kept = {k for k in (*keep, current_tree(bin_dir)) if k}
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(base)):
            if name in kept or not (_TREE.match(name) or _LEFTOVER.match(name)):
                continue
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isdir(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(Step("removed", path))
    return removed
