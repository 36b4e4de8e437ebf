-- 040: the rights of a person over the analyses of analytics/ (issue 28; GDPR Art. 15(1)(h), 18, 21).
--   * Access (Art. 15/20): the access export (gdpr.access) holds the person's per-person-day
--     summaries, their RFM scores and their lifetime value with the fit it came from, so
--     gdpr_processor reads those rows (before, it read only the user id, to delete or re-key).
--   * Objection and restriction stop profiling: the scoring (analytics.scoring, as
--     analytics_modeller) scores nobody whose analytics consent is withdrawn now (the objection's
--     and the restriction's withdrawals, sql/014, or the person's own), so it reads who that is
--     from consent_current: the user id and the state, nothing else. The rights' transaction
--     deletes the person's score rows (gdpr.rights, with the DELETE granted in sql/039).

GRANT SELECT ON analytics_person_days TO gdpr_processor;
GRANT SELECT ON analytics_rfm_scores, analytics_clv_scores, analytics_clv_fits TO gdpr_processor;

GRANT SELECT (user_id, purpose, granted) ON consent_current TO analytics_modeller;
