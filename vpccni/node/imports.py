"""Which modules the CNI plugin needs, as files: its own and the standard library's, derived from imports.

The plugin payload (:mod:`vpccni.node.payload`) ships an interpreter with only the standard-library modules
the plugin reaches, so the set is derived from the source, not listed by hand:

* first-party modules (``plugin``, ``vpccni``): every import, at module level or inside a function (the DEL
  fallback imports its netlink modules lazily), except under ``if TYPE_CHECKING:``. A first-party module that
  does not exist is an error.
* standard-library modules: module-level imports only, inside ``try``/``if`` too; one that does not exist
  here (another platform's ``nt``, ``_winapi`` ...) is skipped. Imports inside their functions are not
  followed: most belong to paths the plugin never takes (``os.popen`` imports ``subprocess``), and following
  them would pull in much of the library. The few such lazy imports the plugin does reach are in
  :data:`LAZY_STDLIB`; the node tests run every verb with nothing else on the filesystem, so one missing
  there fails a test, not a pod.
* :data:`OMIT`: optional C accelerators whose absence the standard library handles itself, each costing a
  large shared library (``_hashlib`` is OpenSSL's 5 MB; ``hashlib`` falls back to the built-in hashes).
* third-party modules imported by first-party code are reported, not shipped: the plugin's paths import none
  (pyroute2 is reachable only from a helper in ``vpccni.net`` that the plugin never calls).

Standard library only: this runs in the image build, with the interpreter whose library it selects.
"""

from __future__ import annotations

import ast
import importlib.machinery
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FIRST_PARTY = ("plugin", "vpccni")
# Imported by the interpreter itself before any of our code runs (the codec lookup is dynamic): under
# ``-X utf8`` the file system and standard streams need only UTF-8.
STARTUP = ("encodings", "encodings.aliases", "encodings.utf_8", "codecs", "io", "abc", "os", "stat")
# Lazy imports inside standard-library functions that the plugin's paths reach (found by running every verb
# with ``-X importtime`` and comparing with this module's static set).
LAZY_STDLIB: tuple[str, ...] = ()
OMIT = frozenset({
    "_hashlib",  # OpenSSL (libcrypto, 5 MB); hashlib/hmac fall back to the built-in _sha256, _blake2 ...
    "_ssl", "ssl",  # OpenSSL; nothing in the plugin speaks TLS
    "_bz2", "bz2", "_lzma", "lzma",  # shutil imports them optionally; the plugin compresses nothing
})


@dataclass(frozen=True)
class Module:
    """One module and the file it is loaded from."""

    name: str
    path: str | None  # None: built into the interpreter
    root: str  # the sys.path entry it was found under ("" when built in)
    first_party: bool

    @property
    def relative(self) -> str:
        """Its file relative to its ``sys.path`` entry (``json/decoder.py``)."""
        return os.path.relpath(self.path, self.root) if self.path else ""

    @property
    def is_extension(self) -> bool:
        return self.path is not None and self.path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


@dataclass(frozen=True)
class ModuleSet:
    modules: tuple[Module, ...]  # sorted by name
    third_party: tuple[str, ...]  # top-level names imported by first-party code and not shipped


class Finder:
    """Locates modules the way the import system would, without importing anything: first-party ones under
    ``app_root``, the others under ``stdlib_dirs``."""

    def __init__(self, app_root: str, stdlib_dirs: Sequence[str]) -> None:
        self.app_root = app_root
        self.stdlib_dirs = tuple(stdlib_dirs)

    def find(self, name: str) -> Module | None:
        first_party = name.partition(".")[0] in FIRST_PARTY
        if not first_party and name in sys.builtin_module_names:
            return Module(name, None, "", False)
        roots = (self.app_root,) if first_party else self.stdlib_dirs
        for root in roots:
            path = self._locate(root, name.split("."))
            if path is not None:
                return Module(name, path, root, first_party)
        return None

    @staticmethod
    def _locate(root: str, parts: list[str]) -> str | None:
        directory = root
        for i, part in enumerate(parts):
            # A package directory wins over a module file, an extension over a source file (as FileFinder).
            candidates = [os.path.join(directory, part, "__init__.py")]
            candidates += [os.path.join(directory, part + s) for s in importlib.machinery.EXTENSION_SUFFIXES]
            candidates.append(os.path.join(directory, part + ".py"))
            path = next((c for c in candidates if os.path.isfile(c)), None)
            if path is None or (i < len(parts) - 1 and not path.endswith("__init__.py")):
                return None
            directory = os.path.dirname(path)
            if i == len(parts) - 1:
                return path
        return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@dataclass(frozen=True)
class Import:
    name: str  # absolute
    lazy: bool  # inside a function
    required: bool  # False: ``b`` of ``from a import b``, a module only if such a file exists


def imports_of(module: Module) -> list[Import]:
    """The imports of one source file, as absolute names; ``from a import b`` gives ``a`` and ``a.b``."""
    assert module.path is not None
    package = module.name if module.path.endswith("__init__.py") else module.name.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for alternative in node.orelse:
                visit(alternative, in_function)
            return
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, in_function, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append(Import(base, in_function, True))
            found.extend(Import(f"{base}.{alias.name}", in_function, False)
                         for alias in node.names if alias.name != "*")
        nested = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, nested)

    with open(module.path, encoding="utf-8") as f:
        visit(ast.parse(f.read(), filename=module.path), False)
    return found


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts) + 1)]


def module_set(finder: Finder, seeds: Iterable[str], omit: frozenset[str] = OMIT) -> ModuleSet:
    """The closure of ``seeds`` under the rules above. LookupError names a missing first-party module."""
    found: dict[str, Module] = {}
    third_party: set[str] = set()
    # (name, imported by first-party code, must exist)
    pending: list[tuple[str, bool, bool]] = [(name, True, True) for name in seeds]
    while pending:
        name, from_first_party, required = pending.pop()
        if name in found or name.partition(".")[0] in omit or name in omit:
            continue
        module = finder.find(name)
        if module is None:
            top = name.partition(".")[0]
            if top in FIRST_PARTY and required:
                raise LookupError(f"{name} is imported by the plugin but is not in {finder.app_root}")
            if from_first_party and required and top not in (*FIRST_PARTY, *sys.stdlib_module_names):
                third_party.add(top)
            continue
        found[name] = module
        pending.extend((parent, from_first_party, True) for parent in _with_parents(name)[:-1])
        if module.path is None or module.is_extension:
            continue
        pending.extend((i.name, module.first_party, i.required)
                       for i in imports_of(module) if module.first_party or not i.lazy)
    return ModuleSet(tuple(found[n] for n in sorted(found)), tuple(sorted(third_party)))
