"""Shared core: configuration, database and migrator, Kafka factories, events, the sink, the embedded stack."""
