"""``python -m gdpr.api``: the privacy-request API (see gdpr.api.server)."""

from gdpr.api.server import main

main()
