"""Synthetic data: Faker users into PostgreSQL, user events into Kafka."""
