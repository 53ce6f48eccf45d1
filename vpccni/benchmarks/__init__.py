"""Benchmarks behind ``vpccni bench <name>``: each module defines ``add_arguments(parser)`` and
``run(args) -> int`` and prints its figures next to a floor measured in the same run (never a verdict
on wall-clock time alone: the machine may be shared). :mod:`.stats` and :mod:`.floors` are shared."""
