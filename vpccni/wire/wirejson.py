"""JSON for the CNI plugin's exec path, without ``import json``.

The runtime execs the plugin for every pod operation. ``import json`` pulls in ``json.decoder``, which
compiles regular expressions at import, so it drags ``re`` (and with it ``enum``, ``functools`` and
``collections``) into every exec: measured at ~40 % of the plugin's whole import time. The scanner and
encoder that do the actual work are C code in the ``_json`` extension module, which imports in
~0.3 ms; ``json`` itself is a thin Python shell around them. This module builds the same C scanner and
encoder with the same settings ``json.loads`` / ``json.dumps(separators=(",", ":"))`` use.

Errors: the C scanner reports a malformed document without a message (it raises StopIteration, or
expects ``json.decoder`` to be loaded to build its exception). Malformed input is rare and not on the
fast path, so on any failure we parse again with the real ``json`` module, which raises its usual
``json.JSONDecodeError`` (a ValueError) naming the line and column.

One deliberate difference from ``json.loads``: ``NaN``, ``Infinity``, ``-Infinity`` and numbers beyond
a double's range (``1e400``, which ``float`` makes infinite) are refused (ValueError). JSON (RFC 8259)
has no such values and no runtime writes them; accepted, they would reach a message :func:`dumps` cannot
write (a request carrying such a prevResult failed as an internal error).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value - value != 0.0:  # inf - inf is NaN: a number too large for a double (1e400) became infinite
        raise ValueError(f"{text} is out of a double's range")
    return value


class _ScannerSettings:
    """The attributes ``_json.make_scanner`` reads: those of a default ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)
    memo: dict[str, str] = {}


def _refuse(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_scan = _json.make_scanner(_ScannerSettings())  # type: ignore[arg-type]  # duck-typed settings, as json does
# (markers, default, encoder, indent, key_separator, item_separator, sort_keys, skipkeys, allow_nan):
# json.encoder.JSONEncoder.iterencode's arguments for separators=(",", ":") and allow_nan=False.
_encode = _json.make_encoder({}, _refuse, _json.encode_basestring_ascii, None, ":", ",", False, False, False)


def loads(data: bytes | str) -> Any:
    """Parse a JSON document; raise ValueError (json.JSONDecodeError) if it is not one."""
    try:
        text = data.decode() if isinstance(data, bytes | bytearray) else data
        start = _skip_whitespace(text, 0)
        value, end = _scan(text, start)
        if _skip_whitespace(text, end) == len(text):
            return value
    except Exception:
        pass
    import json

    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)


def dumps(value: Any) -> str:
    """Compact JSON, ASCII only (like ``json.dumps(value, separators=(",", ":"))``, but refusing NaN)."""
    return "".join(_encode(value, 0))


def _skip_whitespace(text: str, index: int) -> int:
    length = len(text)
    while index < length and text[index] in _WHITESPACE:
        index += 1
    return index
