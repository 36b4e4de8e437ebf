"""The analyses the business asks for (issue 28): retention cohorts, the ordered funnel and
per-person purchase histories, read from per-person-day summaries (``summaries``) that the batch
job keeps as days close, never from a scan of ``events_raw`` (docs/analytics.md)."""
