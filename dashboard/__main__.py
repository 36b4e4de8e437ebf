"""``python -m dashboard``: the live dashboard (see dashboard.server)."""

from dashboard.server import main

main()
