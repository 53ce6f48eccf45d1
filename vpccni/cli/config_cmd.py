"""``vpccni config``: validate the environment as ipamd would; ``--explain`` shows every setting's source.

Plain ``vpccni config`` exits 0 with one "ok" line, or 2 with one line on stderr per bad variable (the
same lines ipamd refuses to start with). ``--explain`` prints every setting, its effective value, whether
it came from the environment or the default, and what it means: the on-call engineer's first command.
``--json`` prints one JSON object on stdout instead (``ok``, then ``settings`` or ``problems``); the error
lines still go to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys

from vpccni.config.settings import SettingRow, Settings
from vpccni.console import fail
from vpccni.errors import ConfigError

PROG = "vpccni config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--explain", action="store_true",
                        help="print every setting: variable, effective value, source (default/env), meaning")
    parser.add_argument("--json", action="store_true", help="print one JSON object (for machines)")


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as error:
        if args.json:
            problems = [problem._asdict() for problem in error.problems]
            sys.stdout.write(json.dumps({"ok": False, "problems": problems}) + "\n")
        for problem in error.problems:
            fail(PROG, str(problem))
        return 2
    rows = settings.explain()
    if args.json:
        document = {"ok": True, "settings": [dataclasses.asdict(row) for row in rows]}
        sys.stdout.write(json.dumps(document, indent=1) + "\n")
    elif args.explain:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(explain_table(rows, width))
    else:
        from_env = sum(row.source == "env" for row in rows)
        sys.stdout.write(f"ok: {len(rows)} settings valid, {from_env} set in the environment "
                         f"({PROG} --explain shows them)\n")
    return 0


def explain_table(rows: list[SettingRow], width: int | None = None) -> str:
    """Aligned columns VARIABLE, VALUE, SOURCE, MEANING (doc summary); lines cut to ``width`` if given."""
    header = SettingRow("VARIABLE", "VALUE", "default", "MEANING")
    var_w = max(len(r.variable) for r in [header, *rows])
    # A long value (tags JSON, a path) should not push every other line's meaning off the screen.
    val_w = min(max(len(r.value or "(unset)") for r in [header, *rows]), 40)
    lines = []
    for row in [header, *rows]:
        source = "SOURCE" if row is header else row.source
        meaning = row.doc if row is header else _summary(row.doc)
        line = f"{row.variable:<{var_w}}  {row.value or '(unset)':<{val_w}}  {source:<7}  {meaning}"
        if width and len(line) > width:
            line = line[: max(width - 1, 0)] + "…"
        lines.append(line.rstrip())
    from_env = sum(row.source == "env" for row in rows)
    lines.append(f"{len(rows)} settings, {from_env} from the environment")
    return "\n".join(lines) + "\n"


def _summary(doc: str) -> str:
    """The doc's first sentence plus its unit: enough to read a value (--json carries the whole doc)."""
    sentences = [part if part.endswith(".") else part + "." for part in doc.split(". ")]
    return " ".join(sentences[:1] + [s for s in sentences[1:] if s.startswith("Unit:")])
