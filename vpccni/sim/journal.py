"""ipamd's churn journal as the library reads it (the format is ipamd's: :mod:`ipamd.state.journal`).

The command line (``vpccni tune``) may not import ipamd; the simulator may, and passes the reader on.
"""

from __future__ import annotations

from ipamd.state.journal import Event, Journal, parse

__all__ = ["Event", "Journal", "parse"]
