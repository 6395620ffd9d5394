"""``python -m texsynth`` runs the command line."""

from .cli import main

raise SystemExit(main())
