"""``python -m ipamd``: the same as ``vpccni-ipamd``."""

from ipamd.main import main

raise SystemExit(main())
