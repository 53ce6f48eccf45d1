"""One way to draw a picture for a report (``bench fleet``, ``tune``): matplotlib off-screen, one axes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def png_axes(path: str) -> Iterator[Any]:
    """Axes to draw on; on leaving, the figure is laid out, written to ``path`` as PNG and closed.
    matplotlib is imported here only: it is in the localcloud extra, and a report without --png never
    pays for it."""
    import matplotlib

    matplotlib.use("Agg")  # no display: the picture goes to a file
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    try:
        yield ax
        fig.tight_layout()
        fig.savefig(os.path.abspath(path), dpi=100)
    finally:
        plt.close(fig)
