"""``python -m devstack up|down|status``: start, stop or inspect the embedded stack."""

from devstack.stack import main

main()
