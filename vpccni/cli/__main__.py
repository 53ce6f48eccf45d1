from vpccni.cli import main

raise SystemExit(main())
