"""``python -m analytics.api``: the analysts' API (see analytics.api.server)."""

from analytics.api.server import main

main()
