"""``vpccni tune --recommend``: which settings to try, and the trade-off frontier among them. Pure.

:func:`candidates` proposes settings from what the node's journal shows (how many addresses it had in
use): WARM_IP_TARGET over a range, with and without a MINIMUM_IP_TARGET at the usual and the high use,
and WARM_ENI_TARGET 0..2 with the IP targets unset (in prefix mode WARM_PREFIX_TARGET 0..2 instead).
Each is an override of the recorded settings; a variable set to ``""`` is unset, as in ipamd.

:func:`frontier` keeps the settings no other beats on every count (fewer idle addresses, shorter waits,
fewer EC2 calls): the trade-off on-call chooses on. :func:`pick` is the one with the fewest idle
addresses within a wait and a call budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vpccni.sim.summary import percentile

IP_TARGET_VARIABLES = ("WARM_IP_TARGET", "MINIMUM_IP_TARGET")
WARM_IP_TARGETS = (1, 2, 3, 4, 6, 8, 12, 16)


@dataclass(frozen=True)
class Scored:
    overrides: Mapping[str, str]
    idle: float  # mean idle addresses
    wait_p99_s: float
    never: int  # pods that never got an address
    calls_per_hour: float


def candidates(in_use: Sequence[int], *, prefix_delegation: bool) -> list[dict[str, str]]:
    """Settings worth replaying, from the addresses in use the journal saw."""
    ordered = sorted(in_use)
    usual, high = int(percentile(ordered, 50)), int(percentile(ordered, 95))
    found: list[dict[str, str]] = []
    for warm in WARM_IP_TARGETS:
        for minimum in sorted({0, usual, high}):
            found.append({"WARM_IP_TARGET": str(warm), "MINIMUM_IP_TARGET": str(minimum) if minimum else "",
                          "WARM_ENI_TARGET": "", "WARM_PREFIX_TARGET": ""})
    unset = dict.fromkeys(IP_TARGET_VARIABLES, "")
    if prefix_delegation:
        found += [{**unset, "WARM_PREFIX_TARGET": str(n)} for n in (0, 1, 2)]
    else:
        found += [{**unset, "WARM_ENI_TARGET": str(n)} for n in (0, 1, 2)]
    return found


def _key(s: Scored) -> tuple[float, float, float]:
    # A pod that never got an address is worse than any wait: it weighs as an hour's wait.
    return (s.idle, s.wait_p99_s + 3600.0 * s.never, s.calls_per_hour)


def dominates(a: Scored, b: Scored) -> bool:
    ka, kb = _key(a), _key(b)
    return all(x <= y for x, y in zip(ka, kb, strict=True)) and ka != kb


def frontier(scored: Sequence[Scored]) -> list[Scored]:
    """The settings no other beats on idle addresses, waits and calls together, fewest idle first."""
    kept = [s for s in scored if not any(dominates(other, s) for other in scored)]
    unique: dict[tuple[float, float, float], Scored] = {}
    for s in sorted(kept, key=_key):
        unique.setdefault(_key(s), s)
    return list(unique.values())


def pick(scored: Sequence[Scored], *, max_wait_p99_s: float, max_calls_per_hour: float) -> Scored | None:
    """The fewest idle addresses among the settings within both budgets (and no pod left without one)."""
    fit = [s for s in scored
           if s.never == 0 and s.wait_p99_s <= max_wait_p99_s and s.calls_per_hour <= max_calls_per_hour]
    return min(fit, key=_key, default=None)


def env_lines(overrides: Mapping[str, str]) -> list[str]:
    """The chart values to paste (``env:`` entries; an unset variable is left out)."""
    return ["env:"] + [f'  {name}: "{value}"' for name, value in sorted(overrides.items()) if value != ""]
