"""Suite-wide pytest configuration: tier markers by directory, root-only tiers skipped without root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_TIERS = ("unit", "cloud", "net", "e2e", "bench", "install", "node")
_NEEDS_ROOT = {"net", "e2e", "node"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    for item in items:
        try:
            tier = Path(item.path).relative_to(root).parts[0]
        except ValueError:
            continue
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
            if tier in _NEEDS_ROOT and os.geteuid() != 0:
                item.add_marker(pytest.mark.skip(reason=f"{tier} tests need root (network namespaces)"))
