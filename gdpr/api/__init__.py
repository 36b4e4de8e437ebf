"""The privacy-request API (``python -m gdpr.api``): people file requests about their own data.

A request names an email address and a type; a one-time code is mailed to the address, and only
that code, sent back, makes the request ``pending`` for the processor. Its secret, given once when
it is filed, shows its status and fetches an access export, once. See ``gdpr.api.server``.
"""
