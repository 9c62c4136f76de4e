from truehop.cli import main

raise SystemExit(main())
