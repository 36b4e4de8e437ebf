"""Benchmarks: every stage against a baseline measured in the same run (``make bench``)."""
