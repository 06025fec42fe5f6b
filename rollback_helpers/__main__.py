from rollback_helpers.cli import main

raise SystemExit(main())
