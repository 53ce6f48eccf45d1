"""A self-contained copy of the CNI plugin for the host: ``vpccni init --self-contained``.

The runtime execs the plugin on the HOST, with the host's filesystem: the image's Python and site-packages
are not there. The plugin's normal path is standard-library only, so the host needs nothing but a Python
>= 3.11 (:data:`MIN_HOST_PYTHON`): init copies the plugin's source files into
``HOST_CNI_BIN_PATH/vpccni.d/<digest>/`` and writes a launcher that runs them with the host's interpreter
(``--host-python``, default ``/usr/bin/python3``) under ``-I -S``.

Which files: derived, not listed. Every ``plugin/*.py`` is parsed and its imports followed -- module-level
ones and the lazy ones inside functions (the DEL fallback's ``vpccni.net.hostroutes``), skipping
``if TYPE_CHECKING:`` blocks -- through every first-party module (``plugin``, ``vpccni``) they reach, with
the packages' ``__init__`` files. Imports outside the standard library are allowed only off the start-up
path: what ``plugin.main`` imports at module level, transitively, must be standard library or first-party,
else init refuses (the copy would not start on a bare host). The rest -- pyroute2, reachable from a
shared helper in ``vpccni.net`` but on none of the plugin's paths (the DEL fallback speaks raw rtnetlink)
-- is optional: the launcher appends the host interpreter's own site directories (or ``--host-library``)
to ``sys.path`` last, so a lazy third-party import, should one ever be reached, still finds the host's.

Layout and atomicity: the directory is named by a digest of the files' paths and bytes and is built in a
temporary directory, then renamed into place; the launcher, written after it, names that digest and finds
the directory next to itself (``__file__``), so it works whatever path the host mounts the bin dir at. A
runtime exec'ing the plugin during an upgrade runs the old launcher with the old tree or the new with the
new. The previous tree is kept (a plugin started just before the upgrade may still import from it
lazily); older ones are removed. Files are also byte-compiled when this interpreter's version is the
host's, so the host's first exec does not compile them.

The host's version is read without running anything when the interpreter resolves (symlinks followed
inside ``--host-fs-root``) to a ``pythonX.Y`` file, as on Debian, Ubuntu, Amazon Linux, Fedora, RHEL;
otherwise it is asked (``-c``), which needs the host filesystem to be this one (``--host-fs-root /``).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

from vpccni.fsutil import fsync_dir
from vpccni.node.init import InitFailed, InitInputError, Step
from vpccni.node.launcher import LAUNCHER_FLAGS, SHEBANG_MAX

HOST_COPY_DIR = "vpccni.d"
DEFAULT_HOST_PYTHON = "/usr/bin/python3"
MIN_HOST_PYTHON = (3, 11)
FIRST_PARTY = ("plugin", "vpccni")
ENTRY_MODULE = "plugin.main"
_DIGEST = re.compile(r"^[0-9a-f]{16}$")
_LAUNCHER_DIGEST = re.compile(rf"{re.escape(HOST_COPY_DIR)}/([0-9a-f]{{16}})")
_VERSIONED = re.compile(r"^python(\d+)\.(\d+)$")
_SYMLINK_HOPS = 40


# --- which files ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginTree:
    """The plugin's files, as derived from its imports."""

    root: str  # the directory holding plugin/ and vpccni/
    files: tuple[str, ...]  # relative paths, sorted
    optional: tuple[str, ...]  # third-party top-level modules imported off the start-up path (pyroute2)
    digest: str  # 16 hex digits over the paths and bytes


def _module_file(root: str, module: str) -> str | None:
    base = os.path.join(root, *module.split("."))
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(path):
            return path
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(root: str, module: str, path: str) -> tuple[set[str], set[str]]:
    """(module-level imports, lazy imports) of one file, as absolute module names (``from a import b``
    gives ``a`` and, when it is a module file, ``a.b``)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    eager: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for alternative in node.orelse:
                visit(alternative, in_function)
            return
        found: list[str] = []
        if isinstance(node, ast.Import):
            found = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found = [base] + [f"{base}.{a.name}" for a in node.names
                              if _module_file(root, f"{base}.{a.name}") is not None]
        (lazy if in_function else eager).update(found)
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    with open(path, encoding="utf-8") as f:
        visit(ast.parse(f.read(), filename=path), False)
    return eager, lazy


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def plugin_tree(root: str) -> PluginTree:
    """Derive the files to copy from ``root/plugin/*.py``; InitFailed if the start-up path would need a
    library the host does not have."""
    plugin_dir = os.path.join(root, "plugin")
    if not os.path.isfile(os.path.join(plugin_dir, "main.py")):
        raise InitFailed(f"{root} holds no plugin/main.py: nothing to copy for the host")
    seeds = [f"plugin.{name[:-3]}" for name in sorted(os.listdir(plugin_dir))
             if name.endswith(".py") and name != "__init__.py"]  # the package itself comes with each
    graph: dict[str, tuple[set[str], set[str]]] = {}
    files: dict[str, str] = {}
    third_party: set[str] = set()
    pending = [m for seed in seeds for m in _with_parents(seed)]
    while pending:
        module = pending.pop()
        if module in graph:
            continue
        path = _module_file(root, module)
        if path is None:
            raise InitFailed(f"the plugin imports {module}, which is not in {root}")
        files[module] = path
        graph[module] = _imports(root, module, path)
        for name in set().union(*graph[module]):
            top = name.partition(".")[0]
            if top in FIRST_PARTY:
                pending.extend(_with_parents(name))
            elif top not in sys.stdlib_module_names:
                third_party.add(top)
    _check_start_up_path(graph)
    relative = sorted({os.path.relpath(path, root) for path in files.values()})
    digest = hashlib.sha256()
    for rel in relative:
        with open(os.path.join(root, rel), "rb") as f:
            digest.update(rel.encode() + b"\0" + f.read() + b"\0")
    return PluginTree(root, tuple(relative), tuple(sorted(third_party)), digest.hexdigest()[:16])


def _check_start_up_path(graph: dict[str, tuple[set[str], set[str]]]) -> None:
    seen: set[str] = set()
    pending = _with_parents(ENTRY_MODULE)
    while pending:
        module = pending.pop()
        if module in seen or module not in graph:
            continue
        seen.add(module)
        for name in graph[module][0]:
            top = name.partition(".")[0]
            if top in FIRST_PARTY:
                pending.extend(_with_parents(name))
            elif top not in sys.stdlib_module_names:
                raise InitFailed(f"{module} imports {name} at start-up: the plugin would not start on a "
                                 "host without it (keep the plugin's start-up path standard-library only)")


# --- the host's interpreter ----------------------------------------------------------------------------


def on_host(path: str, host_fs_root: str) -> str:
    """Where the host's ``path`` is visible to this process."""
    return os.path.join(host_fs_root, path.lstrip("/"))


def resolve_on_host(path: str, host_fs_root: str) -> str:
    """The host path ``path`` leads to, following symlinks as the host would (absolute targets are host
    paths)."""
    current = os.path.normpath(path)
    for _ in range(_SYMLINK_HOPS):
        seen_here = on_host(current, host_fs_root)
        if not os.path.islink(seen_here):
            return current
        target = os.readlink(seen_here)
        current = os.path.normpath(target if target.startswith("/")
                                   else os.path.join(os.path.dirname(current), target))
    raise InitFailed(f"host Python {path}: too many levels of symbolic links")


def host_python_version(python: str, host_fs_root: str) -> tuple[tuple[int, int], str]:
    """(version, resolved host path) of the host's interpreter; InitFailed naming what is wrong."""
    if not os.path.isdir(host_fs_root):
        raise InitInputError(f"--host-fs-root {host_fs_root} is not a directory (mount the host's / there)")
    resolved = resolve_on_host(python, host_fs_root)
    seen = on_host(resolved, host_fs_root)
    if not os.path.isfile(seen) or not os.access(seen, os.X_OK):
        raise InitFailed(f"host Python {python} is not an executable file on the host (looked at {seen}); "
                         f"vpccni's plugin needs Python >= {_dotted(MIN_HOST_PYTHON)} on the node")
    versioned = _VERSIONED.match(os.path.basename(resolved))
    if versioned:
        version = (int(versioned[1]), int(versioned[2]))
    elif os.path.realpath(host_fs_root) == "/":
        version = _ask_version(resolved)
    else:
        raise InitFailed(f"cannot tell which Python {python} is on the host: it resolves to {resolved}, not "
                         "to a pythonX.Y file; pass --host-python with a versioned path (e.g. "
                         f"/usr/bin/python{_dotted(MIN_HOST_PYTHON)})")
    if version < MIN_HOST_PYTHON:
        raise InitFailed(f"host Python {python} is {_dotted(version)} ({resolved}); vpccni's plugin needs "
                         f">= {_dotted(MIN_HOST_PYTHON)} on the node: install one and pass --host-python")
    return version, resolved


def _ask_version(python: str) -> tuple[int, int]:
    try:
        out = subprocess.run([python, "-I", "-S", "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
        return int(out[0]), int(out[1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise InitFailed(f"cannot tell which Python {python} is: running it failed ({exc})") from exc


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def default_host_libraries(resolved_python: str, version: tuple[int, int],
                           host_fs_root: str) -> tuple[str, ...]:
    """The host interpreter's own site directories that exist (what ``site`` would add, which ``-S``
    skips): Debian/Ubuntu's dist-packages, the others' site-packages."""
    prefix = os.path.dirname(os.path.dirname(resolved_python))
    minor = _dotted(version)
    candidates = (
        f"{prefix}/local/lib/python{minor}/dist-packages",
        f"{prefix}/lib/python3/dist-packages",
        f"{prefix}/lib/python{minor}/site-packages",
        f"{prefix}/lib64/python{minor}/site-packages",
    )
    return tuple(p for p in candidates if os.path.isdir(on_host(p, host_fs_root)))


@dataclass(frozen=True)
class HostCopy:
    """A planned self-contained install: every host check done, nothing written yet."""

    tree: PluginTree
    launcher: str  # the launcher's text
    compile_pyc: bool  # this interpreter is the host's version: byte-compile the copy here


def plan_host_copy(python: str, libraries: tuple[str, ...] | None, host_fs_root: str, root: str) -> HostCopy:
    """Derive the files, check the host's interpreter, render the launcher. ``libraries`` None = the host
    interpreter's own site directories."""
    tree = plugin_tree(root)
    version, resolved = host_python_version(python, host_fs_root)
    if libraries is None:
        libraries = default_host_libraries(resolved, version, host_fs_root)
    launcher = render_copy_launcher(python, tree.digest, libraries)
    return HostCopy(tree, launcher, compile_pyc=sys.version_info[:2] == version)


# --- the launcher and the tree on disk -----------------------------------------------------------------


def render_copy_launcher(python: str, digest: str, libraries: Iterable[str] = ()) -> str:
    """The launcher of a host copy: the tree ``vpccni.d/<digest>`` next to the launcher itself."""
    if not python.startswith("/") or any(c.isspace() for c in python):
        raise InitInputError(f"--host-python {python!r} must be an absolute path without whitespace")
    shebang = f"#!{python} {LAUNCHER_FLAGS}"
    if len(shebang) > SHEBANG_MAX:
        raise InitInputError(f"--host-python is too long for a shebang ({len(shebang)} > {SHEBANG_MAX})")
    if not _DIGEST.match(digest):
        raise ValueError(f"digest {digest!r}")
    libraries = list(libraries)
    for path in libraries:
        if not path.startswith("/") or "\n" in path:
            raise InitInputError(f"--host-library {path!r} must be absolute and on one line")
    return (
        f"{shebang}\n"
        '"""vpccni CNI plugin launcher (a self-contained copy), generated by vpccni init; do not edit."""\n'
        "import sys\n"
        f'sys.path[:0] = [(__file__.rpartition("/")[0] or ".") + "/{HOST_COPY_DIR}/{digest}"]\n'
        f"sys.path += {libraries!r}\n"
        "from plugin.main import main\n"
        "sys.exit(main())\n"
    )


def launcher_digest(launcher_path: str) -> str | None:
    """The tree an installed launcher names (None: absent, or not a host-copy launcher)."""
    try:
        with open(launcher_path, encoding="utf-8", errors="replace") as f:
            found = _LAUNCHER_DIGEST.search(f.read(4096))
    except OSError:
        return None
    return found[1] if found else None


def _same_tree(tree: PluginTree, directory: str) -> bool:
    for rel in tree.files:
        try:
            with open(os.path.join(directory, rel), "rb") as installed:
                copied = installed.read()
            with open(os.path.join(tree.root, rel), "rb") as source:
                if copied != source.read():
                    return False
        except FileNotFoundError:
            return False
    return True


def install_tree(tree: PluginTree, bin_dir: str, compile_pyc: bool) -> Step:
    """Make ``bin_dir/vpccni.d/<digest>`` hold the tree (built aside, renamed into place)."""
    base = os.path.join(bin_dir, HOST_COPY_DIR)
    dest = os.path.join(base, tree.digest)
    detail = f"{len(tree.files)} files"
    try:
        os.makedirs(base, mode=0o755, exist_ok=True)
        if os.path.isdir(dest) and _same_tree(tree, dest):
            return Step("unchanged", dest, detail)
        building = tempfile.mkdtemp(prefix=".tmp-", dir=base)
        try:
            for rel in tree.files:
                target = os.path.join(building, rel)
                os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
                shutil.copyfile(os.path.join(tree.root, rel), target)
                with open(target, "rb") as f:
                    os.fsync(f.fileno())
                os.chmod(target, 0o644)
                if compile_pyc:  # immutable directory: the pyc need not check the source again
                    py_compile.compile(target, cfile=importlib.util.cache_from_source(target), doraise=True,
                                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            for directory, _, _ in os.walk(building):
                os.chmod(directory, 0o755)
                fsync_dir(directory)
            if os.path.lexists(dest):  # damaged: set it aside first (rename cannot replace a directory)
                aside = tempfile.mkdtemp(prefix=".old-", dir=base)
                os.replace(dest, os.path.join(aside, tree.digest))
            os.replace(building, dest)
        finally:
            shutil.rmtree(building, ignore_errors=True)
        fsync_dir(base)
    except (OSError, py_compile.PyCompileError) as exc:
        raise InitFailed(f"cannot install the plugin copy into {base}: {exc}") from exc
    return Step("installed", dest, detail)


def prune_trees(bin_dir: str, keep: Iterable[str | None]) -> list[Step]:
    """Remove the trees no launcher names any more, and leftovers of killed installs."""
    base = os.path.join(bin_dir, HOST_COPY_DIR)
    kept = {k for k in keep if k}
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir(base)):
            if name in kept or not (_DIGEST.match(name) or name.startswith((".tmp-", ".old-"))):
                continue
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(Step("removed", os.path.join(base, name)))
    return removed
