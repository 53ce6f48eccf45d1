"""The CNI plugin payload: a directory that runs the plugin on a host that has nothing but a kernel.

The runtime execs the plugin on the host, where the image's files are not. Hosts differ: Debian 12 has a
Python 3.11, Amazon Linux 2023 a 3.9 and glibc 2.34 (this interpreter needs 2.35), Bottlerocket neither a
Python nor a shell. So the payload brings its own interpreter, loader and libraries, and assumes no path on
the host: wherever the directory is copied (HOST_CNI_BIN_PATH), it runs from there. Layout::

    vpccni                                static launcher (launcher.c): the file the runtime execs
    vpccni.d/current -> <tree>            which tree the launcher runs: a relative symlink
    vpccni.d/<tree>/bin/python            this interpreter (python3.11 here)
    vpccni.d/<tree>/lib/ld.so             its loader (ld-linux-x86-64.so.2 here)
    vpccni.d/<tree>/lib/libc.so.6 ...     its shared libraries and its extension modules' (ldd closure)
    vpccni.d/<tree>/lib/python3.11/...    the standard-library modules the plugin imports, compiled
    vpccni.d/<tree>/lib/python3.11/lib-dynload/...            their extension modules
    vpccni.d/<tree>/app/{plugin,vpccni}/  the plugin's own modules: sources and unchecked-hash pyc
    vpccni.d/<tree>/cni/portmap ...       the reference plugins we chain (--chain), run by the same loader
    vpccni.d/<tree>/entry.py              puts app/ on sys.path and runs plugin.main
    vpccni.d/<tree>/payload.json          what is in the tree, for people and for init

``<tree>`` is 16 hex digits of a digest over the tree's paths, modes and bytes: identical inputs give the
same name, so an installer can keep an identical tree and switch ``current`` atomically to a new one.

The launcher runs ``<tree>/lib/ld.so --library-path <tree>/lib <tree>/bin/python -I -S -B -X utf8
<tree>/entry.py`` (generic names: the launcher knows no architecture or Python version). Running the
loader as the program means the kernel never reads the interpreter's own loader path (the host's
``/lib64/ld-linux-x86-64.so.2``) and every library comes from ``<tree>/lib``. Python then finds its
library from the interpreter's location: the prefix is ``<tree>`` because ``<tree>/lib/python3.11/os.pyc``
exists, and ``lib-dynload`` must exist too (else a warning on every exec). ``-I`` ignores PYTHONHOME and
PYTHONPATH, so the host's environment cannot redirect it; ``-S`` skips ``site``; ``-B`` never writes
bytecode into the host's bin dir; ``-X utf8`` makes the file system and standard streams UTF-8 whatever
the host's locale, so UTF-8 is the only codec shipped. The standard library is sourceless ``.pyc`` (half
the size, one file per module); the plugin's own modules keep their sources so a traceback in the
plugin's log shows lines.

The reference plugins (Debian's portmap, bandwidth ...) are dynamically linked against glibc as well, so
they come into the tree too, with their libraries: the launcher, copied or linked under such a plugin's
name, runs ``<tree>/lib/ld.so --library-path <tree>/lib <tree>/cni/<name>``.

Run inside the image build with the image's interpreter: ``python -m vpccni.node.payload --out DIR
--launcher FILE --check``. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import py_compile
import re
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from vpccni.node.imports import FIRST_PARTY, LAZY_STDLIB, STARTUP, Finder, ModuleSet, module_set

# launcher.c spells the same names and flags (a node test checks they agree).
TREES = "vpccni.d"
CURRENT = "current"
LAUNCHER = "vpccni"
ENTRY = "entry.py"
INTERPRETER = "bin/python"
LOADER = "lib/ld.so"
CHAINED = "cni"
PYTHON_FLAGS = ("-I", "-S", "-B", "-X", "utf8")
MANIFEST = "payload.json"
_PT_INTERP = 3
_LIST_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+) \(0x[0-9a-f]+\)$")
_ENTRY_TEXT = '''"""vpccni CNI plugin entry, run by the launcher with this tree's interpreter; generated."""
import sys

sys.path.append(__file__.rpartition("/")[0] + "/app")
from plugin.main import main

sys.exit(main())
'''


class PayloadError(Exception):
    """The payload cannot be built as asked (message says why)."""


# --- ELF: the loader a file names, and the libraries it needs -------------------------------------------


def elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of an ELF64 little-endian file (None: static). PayloadError if not such a file."""
    with open(path, "rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise PayloadError(f"{path} is not a 64-bit little-endian ELF file")
        phoff, = struct.unpack_from("<Q", header, 32)
        phentsize, phnum = struct.unpack_from("<HH", header, 54)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack("<IIQQQQ", f.read(40))
            if p_type == _PT_INTERP:
                f.seek(p_offset)
                return f.read(p_filesz).rstrip(b"\0").decode()
    return None


def shared_libraries(loader: str, files: Iterable[str]) -> dict[str, str]:
    """{name the files ask for: file} of every library they load, transitively, as the loader resolves it
    (``ld.so --list``, what ldd runs); the loader itself and the vDSO excluded."""
    found: dict[str, str] = {}
    for path in files:
        listed = subprocess.run([loader, "--list", path], capture_output=True, text=True, timeout=60)
        if listed.returncode != 0:
            raise PayloadError(f"{loader} --list {path} failed: {listed.stderr.strip() or listed.stdout}")
        for line in listed.stdout.splitlines():
            if "not found" in line:
                raise PayloadError(f"{path} needs a library this system lacks: {line.strip()}")
            match = _LIST_LINE.match(line)
            if match and match[1]:  # "name => path (addr)"; the loader and the vDSO have no "=>"
                found[match[1]] = os.path.realpath(match[2])
    return found


# --- the tree --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    directory: str  # holds the launcher and vpccni.d/
    tree: str  # the digest naming vpccni.d/<tree>
    files: int
    size: int  # bytes in the tree plus the launcher


def stdlib_dirs() -> tuple[str, str]:
    """(pure, extension-module) standard-library directories of this interpreter."""
    pure = sysconfig.get_path("stdlib")
    dynload = os.path.join(pure, "lib-dynload")
    if not os.path.isdir(dynload):
        dynload = str(sysconfig.get_config_var("DESTSHARED") or dynload)
    return pure, dynload


def plugin_seeds(app_root: str) -> list[str]:
    """Every ``plugin/*.py`` module (their imports bring in the rest) and what the interpreter loads."""
    names = sorted(n[:-3] for n in os.listdir(os.path.join(app_root, "plugin"))
                   if n.endswith(".py") and n != "__init__.py")
    return [f"plugin.{n}" for n in names] + list(STARTUP) + list(LAZY_STDLIB)


def _copy(src: str, dest: str, mode: int) -> None:
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    shutil.copyfile(src, dest)
    os.chmod(dest, mode)


def _compile(src: str, dest: str, display: str) -> None:
    os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)
    # Unchecked hash: the pyc is never compared with a source (there is none, or it never changes), and the
    # bytes do not depend on file times, so the tree's digest is reproducible.
    py_compile.compile(src, cfile=dest, dfile=display, doraise=True, optimize=0,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    os.chmod(dest, 0o644)


def _fill(tree: str, modules: ModuleSet, python: str, libraries: dict[str, str], loader: str,
          chained: list[str]) -> None:
    stdlib = os.path.join(sys.platlibdir, f"python{sys.version_info[0]}.{sys.version_info[1]}")
    _copy(python, os.path.join(tree, INTERPRETER), 0o755)
    _copy(loader, os.path.join(tree, LOADER), 0o755)
    for plugin in chained:
        _copy(plugin, os.path.join(tree, CHAINED, os.path.basename(plugin)), 0o755)
    for name, path in libraries.items():
        _copy(path, os.path.join(tree, "lib", name), 0o644)
    os.makedirs(os.path.join(tree, stdlib, "lib-dynload"), mode=0o755, exist_ok=True)  # exec-prefix landmark
    for module in modules.modules:
        if module.path is None:
            continue
        if module.first_party:
            dest = os.path.join(tree, "app", module.relative)
            _copy(module.path, dest, 0o644)
            _compile(dest, importlib.util.cache_from_source(dest), os.path.join("app", module.relative))
        elif module.is_extension:
            dest = os.path.join(tree, stdlib, "lib-dynload", os.path.basename(module.path))
            _copy(module.path, dest, 0o644)
        else:
            relative = os.path.join(stdlib, module.relative)
            _compile(module.path, os.path.join(tree, relative + "c"), relative)
    with open(os.path.join(tree, ENTRY), "w", encoding="utf-8") as f:
        f.write(_ENTRY_TEXT)
    os.chmod(os.path.join(tree, ENTRY), 0o644)


def tree_digest(tree: str) -> str:
    """16 hex digits over every file's relative path, mode and bytes (the manifest excluded: it names it)."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, tree)
            if relative == MANIFEST:
                continue
            with open(path, "rb") as f:
                content = f.read()
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            digest.update(f"{relative}\0{mode:o}\0{len(content)}\0".encode() + content)
    return digest.hexdigest()[:16]


def _size(path: str) -> tuple[int, int]:
    files = size = 0
    for directory, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(directory, name)).st_size
    return files, size


def _replace_symlink(target: str, link: str) -> None:
    temp = f"{link}.tmp-{os.getpid()}"
    os.symlink(target, temp)
    os.replace(temp, link)


def _check_chained(chained: list[str], loader: str) -> None:
    for plugin in chained:
        name = os.path.basename(plugin)
        if name == LAUNCHER or not os.path.isfile(plugin):
            raise PayloadError(f"--chain {plugin}: not a plugin file (or named {LAUNCHER}, which is ours)")
        # A static plugin needs no loader (install it as it is); one for another loader cannot use ours.
        if elf_interpreter(plugin) != loader:
            raise PayloadError(f"--chain {plugin}: not linked against this interpreter's loader {loader}")


def build(out: str, launcher: str, app_root: str, chained: Iterable[str] = ()) -> Payload:
    """Assemble the payload for this interpreter into ``out`` (created if missing), with the reference
    plugins ``chained``; return what was built."""
    if elf_interpreter(launcher) is not None:
        raise PayloadError(f"the launcher {launcher} is dynamically linked: it must run with no loader")
    python = os.path.realpath(sys.executable)
    loader = elf_interpreter(python)
    if loader is None:
        raise PayloadError(f"{python} is statically linked: nothing here knows how to ship that")
    plugins = sorted(chained)
    _check_chained(plugins, loader)
    for top in FIRST_PARTY:
        if not os.path.isfile(os.path.join(app_root, top, "__init__.py")):
            raise PayloadError(f"{app_root} holds no {top} package")
    modules = module_set(Finder(app_root, stdlib_dirs()), plugin_seeds(app_root))
    extensions = [m.path for m in modules.modules if m.is_extension and m.path]
    libraries = shared_libraries(loader, [python, *extensions, *plugins])
    base = os.path.join(out, TREES)
    os.makedirs(base, mode=0o755, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-", dir=base)
    try:
        os.chmod(staging, 0o755)
        _fill(staging, modules, python, libraries, os.path.realpath(loader), plugins)
        tree = tree_digest(staging)
        _write_manifest(staging, tree, modules, libraries, plugins)
        final = os.path.join(base, tree)
        if os.path.lexists(final):
            shutil.rmtree(final)
        os.replace(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _copy(launcher, os.path.join(out, f".{LAUNCHER}.tmp-{os.getpid()}"), 0o755)
    os.replace(os.path.join(out, f".{LAUNCHER}.tmp-{os.getpid()}"), os.path.join(out, LAUNCHER))
    _replace_symlink(tree, os.path.join(base, CURRENT))
    files, size = _size(final)
    return Payload(out, tree, files + 1, size + os.path.getsize(os.path.join(out, LAUNCHER)))


def _write_manifest(tree: str, digest: str, modules: ModuleSet, libraries: dict[str, str],
                    chained: list[str]) -> None:
    manifest = {
        "tree": digest,
        "chained": [os.path.basename(p) for p in chained],
        "python": ".".join(map(str, sys.version_info[:3])),
        "flags": list(PYTHON_FLAGS),
        "libraries": sorted(libraries),
        "stdlib_modules": [m.name for m in modules.modules if not m.first_party],
        "plugin_modules": [m.name for m in modules.modules if m.first_party],
        # Imported somewhere in first-party code reachable from the plugin, never on its paths: not shipped.
        "not_shipped": list(modules.third_party),
    }
    with open(os.path.join(tree, MANIFEST), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    os.chmod(os.path.join(tree, MANIFEST), 0o644)


def check(payload: str) -> str:
    """Run the payload's launcher for CNI_COMMAND=VERSION with an empty environment; its answer, or
    PayloadError with what it printed."""
    done = subprocess.run([os.path.join(payload, LAUNCHER)], env={"CNI_COMMAND": "VERSION"},
                          input=b"", capture_output=True, timeout=60)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    try:
        versions = json.loads(out)["supportedVersions"]
    except (ValueError, KeyError, TypeError):
        versions = None
    if done.returncode != 0 or not versions or err:
        raise PayloadError(f"the payload's VERSION failed (exit {done.returncode}): {out.strip()} "
                           f"{err.strip()}")
    return out.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpccni.node.payload", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory to assemble the payload in")
    parser.add_argument("--launcher", required=True, help="the static launcher built from launcher.c")
    parser.add_argument("--app-root", default=os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), help="directory holding the plugin and vpccni packages")
    parser.add_argument("--chain", action="append", default=[], metavar="PLUGIN",
                        help="a reference plugin to carry (repeat); the launcher runs it under its name")
    parser.add_argument("--check", action="store_true", help="run the payload's VERSION once built")
    args = parser.parse_args(argv)
    try:
        payload = build(args.out, args.launcher, args.app_root, args.chain)
        answer = check(payload.directory) if args.check else ""
    except (PayloadError, LookupError, OSError) as exc:
        print(f"payload: {exc}", file=sys.stderr)
        return 1
    print(f"payload: {payload.directory}/{TREES}/{payload.tree}: {payload.files} files, "
          f"{payload.size / 1e6:.1f} MB{'; VERSION: ' + answer if answer else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
