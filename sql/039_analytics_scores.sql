-- 039: per-person RFM scores and lifetime values (issue 28), and each lifetime-value fit.
--   * analytics_rfm_scores: one row per buyer as of a day (the last scoring replaces the whole
--     table): days since the last purchase, purchases, their value, the three quintile scores and
--     the segment (analytics.rfm_model).
--   * analytics_clv_fits: each BG/NBD + Gamma-Gamma fit: the day it saw the data to, the people
--     and repeat buyers it was fitted on, the seven parameters with their 95 % intervals, and,
--     for a calibration/holdout validation, the holdout's totals and per-person errors beside
--     the naive baseline's (analytics.clv_model, analytics.clv_validation). No per-person value.
--   * analytics_clv_scores: one row per buyer of the latest full fit (replaced with it): the
--     BG/NBD inputs, P(alive), expected purchases, expected spend and CLV over the fit's horizon.
-- Per-person rows are pseudonymous data like events_raw and analytics_person_days: keyed by
-- user_id, never joined to users_pii.
--   * Written by analytics_modeller, through its login login_analytics (python -m analytics.rfm,
--     python -m analytics.clv, and the scheduler's analytics job): the scoring reads user ids from
--     the summaries, which the batch login may not ("never who", sql/015), and analytics_reader
--     (the reports' login, also Grafana's and the generator's) stays a reader. It reads the
--     summaries and writes the scores, nothing else; it holds the erasure lock shared while it
--     scores, so an erasure never interleaves with a scoring that read the person before it (the
--     erasure then deletes the rows the scoring wrote, or the scoring reads the re-keyed rows).
--   * analytics_reader reads them (the analyses inside the pseudonymous zone; what leaves it is
--     segment sizes and values, with the k-rule).
--   * gdpr_processor deletes a person's rows in the erasure's transaction (gdpr.erasure): their
--     re-keyed summaries still count in the aggregates, but no per-person score follows them.

CREATE TABLE IF NOT EXISTS analytics_rfm_scores (
    user_id      UUID PRIMARY KEY,
    as_of        DATE NOT NULL,
    recency_days INTEGER NOT NULL CHECK (recency_days >= 0),
    frequency    INTEGER NOT NULL CHECK (frequency >= 1),
    monetary     NUMERIC(38, 2) NOT NULL,
    r_score      SMALLINT NOT NULL CHECK (r_score BETWEEN 1 AND 5),
    f_score      SMALLINT NOT NULL CHECK (f_score BETWEEN 1 AND 5),
    m_score      SMALLINT NOT NULL CHECK (m_score BETWEEN 1 AND 5),
    segment      TEXT NOT NULL,
    computed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS analytics_clv_fits (
    id                BIGSERIAL PRIMARY KEY,
    as_of             DATE NOT NULL,
    -- NULL: fitted on every summarised day up to as_of (its predictions are analytics_clv_scores);
    -- a day: a validation, fitted up to it and compared with the holdout after it, up to as_of.
    calibration_end   DATE CHECK (calibration_end < as_of),
    horizon_days      INTEGER NOT NULL CHECK (horizon_days > 0),
    people            INTEGER NOT NULL,
    repeat_buyers     INTEGER NOT NULL,
    r                 DOUBLE PRECISION NOT NULL,
    r_low             DOUBLE PRECISION NOT NULL,
    r_high            DOUBLE PRECISION NOT NULL,
    alpha             DOUBLE PRECISION NOT NULL,
    alpha_low         DOUBLE PRECISION NOT NULL,
    alpha_high        DOUBLE PRECISION NOT NULL,
    a                 DOUBLE PRECISION NOT NULL,
    a_low             DOUBLE PRECISION NOT NULL,
    a_high            DOUBLE PRECISION NOT NULL,
    b                 DOUBLE PRECISION NOT NULL,
    b_low             DOUBLE PRECISION NOT NULL,
    b_high            DOUBLE PRECISION NOT NULL,
    p                 DOUBLE PRECISION NOT NULL,
    p_low             DOUBLE PRECISION NOT NULL,
    p_high            DOUBLE PRECISION NOT NULL,
    q                 DOUBLE PRECISION NOT NULL,
    q_low             DOUBLE PRECISION NOT NULL,
    q_high            DOUBLE PRECISION NOT NULL,
    gamma             DOUBLE PRECISION NOT NULL,
    gamma_low         DOUBLE PRECISION NOT NULL,
    gamma_high        DOUBLE PRECISION NOT NULL,
    holdout_actual    DOUBLE PRECISION,
    holdout_predicted DOUBLE PRECISION,
    holdout_naive     DOUBLE PRECISION,
    holdout_mae       DOUBLE PRECISION,
    holdout_naive_mae DOUBLE PRECISION,
    computed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS analytics_clv_scores (
    user_id                UUID PRIMARY KEY,
    fit_id                 BIGINT NOT NULL REFERENCES analytics_clv_fits (id),
    as_of                  DATE NOT NULL,
    frequency              INTEGER NOT NULL CHECK (frequency >= 0),
    recency_days           INTEGER NOT NULL CHECK (recency_days >= 0),
    age_days               INTEGER NOT NULL CHECK (age_days >= recency_days),
    mean_spend             NUMERIC(38, 6),
    p_alive                DOUBLE PRECISION NOT NULL,
    expected_purchases     DOUBLE PRECISION NOT NULL,
    expected_spend         DOUBLE PRECISION NOT NULL,
    clv                    DOUBLE PRECISION NOT NULL,
    computed_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS analytics_clv_scores_fit_idx ON analytics_clv_scores (fit_id);

SELECT platform_group_role('analytics_modeller');

GRANT SELECT ON analytics_person_days, analytics_person_days_built TO analytics_modeller;
GRANT SELECT, INSERT, DELETE ON analytics_rfm_scores, analytics_clv_scores TO analytics_modeller;
GRANT SELECT, INSERT ON analytics_clv_fits TO analytics_modeller;
GRANT USAGE ON SEQUENCE analytics_clv_fits_id_seq TO analytics_modeller;
INSERT INTO platform_lock_grants (name, grantee, exclusive) VALUES ('erasure', 'analytics_modeller', false) ON CONFLICT DO NOTHING;
GRANT EXECUTE ON FUNCTION platform_lock(TEXT, BOOLEAN, INTEGER) TO analytics_modeller;

GRANT SELECT ON analytics_rfm_scores, analytics_clv_scores, analytics_clv_fits TO analytics_reader;
GRANT SELECT (user_id), DELETE ON analytics_rfm_scores, analytics_clv_scores TO gdpr_processor;

-- The login, a member of its own group only (the same rules as sql/015's).
SELECT platform_component_login('login_analytics', 'analytics_modeller');
