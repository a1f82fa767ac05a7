from ticketbridge.cli import main

raise SystemExit(main())
