"""``python -m plugin``: the same executable as the ``vpccni-cni`` console script."""

from plugin.main import main

raise SystemExit(main())
