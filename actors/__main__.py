"""``python -m actors`` is the ``troupe`` command."""

from actors.cli import main

raise SystemExit(main())
