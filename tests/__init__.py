"""vpccni's test suite: tiers by directory (unit, cloud, net, e2e, bench, install), parts inside a tier."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The repository's top directory (charts, iam, README, scripts live there)."""


@contextmanager
def quiet(logger: str, level: int = logging.ERROR) -> Iterator[None]:
    """``logger`` at ``level`` inside the block (e.g. ipamd's thousands of throttle warnings in a fleet run),
    as it was after: other tests' log captures must not depend on which test ran first."""
    log = logging.getLogger(logger)
    before = log.level
    log.setLevel(level)
    try:
        yield
    finally:
        log.setLevel(before)
