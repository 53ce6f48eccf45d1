"""vpccni's test suite: tiers by directory (unit, cloud, net, e2e, bench, install), parts inside a tier."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The repository's top directory (charts, iam, README, scripts live there)."""
