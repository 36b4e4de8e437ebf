"""The analyses the business asks for (issue 28): retention cohorts, the ordered funnel,
per-person purchase histories, RFM segments and lifetime value. The analyses read per-person-day
summaries (``summaries``) that the batch job keeps as days close, never a scan of ``events_raw``;
the models (``rfm_model``, ``clv_model``) are pure functions over those histories (docs/analytics.md)."""
