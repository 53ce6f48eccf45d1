"""The fuzz tests' budget and seed, from the environment, so CI runs a fixed, repeatable amount and a person
can run a long campaign with the same tests.

CI (the default): :data:`CI_EXAMPLES` examples per test, seed :data:`CI_SEED`, no example database (a run
never depends on an earlier one and writes nothing into the checkout), no deadline (a shared machine is
slow at times; a fuzz test judges outcomes, never time).

A longer run::

    VPCCNI_FUZZ_EXAMPLES=20000 VPCCNI_FUZZ_SEED=random \\
        .venv/bin/python -m pytest --timeout 0 tests/unit/wire/test_protocol_fuzz.py \\
        tests/unit/plugin/test_cni_fuzz.py --hypothesis-show-statistics

(``--timeout 0``: the suite's per-test timeout of 300 s is for CI's budget; 20,000 examples of one test can
take longer on a busy machine.)

``VPCCNI_FUZZ_SEED`` is an integer, or ``random`` for a fresh seed each run (Hypothesis prints the seed of
a failure, to replay it with ``VPCCNI_FUZZ_SEED=<that seed>``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings

CI_EXAMPLES = 300
CI_SEED = 20_121_207

F = TypeVar("F", bound=Callable[..., Any])


def fuzz(test: F) -> F:
    """Apply the budget and the seed to one ``@given`` test (put it above ``@given``)."""
    examples = int(os.environ.get("VPCCNI_FUZZ_EXAMPLES", CI_EXAMPLES))
    chosen = os.environ.get("VPCCNI_FUZZ_SEED", str(CI_SEED))
    configured = settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(test)
    return configured if chosen == "random" else seed(int(chosen))(configured)
