"""``python -m ipamd``: the same as ``vpccni-ipamd``."""

from ipamd.app.main import main

raise SystemExit(main())
