"""``python -m meterd``: the meter daemon."""

from meterd.app.main import main

raise SystemExit(main())
