"""Lazy package exports (PEP 562): a package names what it offers without importing it until first use.

The local clouds and the Azure provider export their main classes from their package, but importing the
package must not import moto, the Azure SDK or ``cryptography``: a node's install lacks some of them and every
command would pay for the rest. Standard library only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose name -> submodule table is ``exports``.

    A name is imported from ``package.<submodule>`` on first access and cached in the package's namespace.
    """
    namespace = importlib.import_module(package).__dict__

    def getattr_(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted([*namespace, *exports])

    return getattr_, dir_
