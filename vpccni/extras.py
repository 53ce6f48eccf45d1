"""Optional parts of the installation: what a node's install leaves out and how a user gets it.

A node runs the base install (ipamd, the plugin, init, status, max-pods, config). The local cloud, the demo,
the local-cloud benchmarks and the pytest fixtures need the ``localcloud`` extra, which brings moto; each of
them checks here first, before importing anything of it, so its absence is one clear line, not a traceback.
"""

from __future__ import annotations

import importlib.util

LOCALCLOUD_EXTRA = "vpccni[localcloud]"


def localcloud_missing(what: str) -> str | None:
    """None when the local cloud is installed; else one line: ``what`` needs it, and how to get it."""
    if importlib.util.find_spec("moto") is not None:
        return None
    return (f"{what} needs the local cloud, which this installation does not have; "
            f"install it with: pip install '{LOCALCLOUD_EXTRA}'")
