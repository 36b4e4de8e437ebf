"""Kafka consumers: raw events and streaming daily metrics, both on the shared sink in core.sink."""
