"""The HTTP event collector: browsers, apps and back-ends send events over HTTPS, Kafka gets them.

``python -m collector`` serves ``POST /v1/events`` and ``POST /v1/consent``; ``python -m
collector.keys`` issues, lists and revokes the write keys that clients send.
"""
