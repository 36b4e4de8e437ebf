"""Batch layer: recompute daily metrics from events_raw and reconcile them with the streaming ones."""
