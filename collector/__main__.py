"""``python -m collector``: the HTTP event collector (see collector.server)."""

from collector.server import main

main()
