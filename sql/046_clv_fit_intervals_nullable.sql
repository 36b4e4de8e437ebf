-- 046: a lifetime-value fit may have no intervals.
--
-- analytics.clv_model keeps a fit's point estimates where the information matrix is not positive
-- definite (a short history cannot identify drop-out: a and b drift along a flat ridge) and marks
-- its intervals unavailable. sql/039 declared every _low/_high column NOT NULL, so such a fit
-- would have to store a placeholder; NULL says "no interval" in SQL's own words, and a
-- comparison with it is unknown, never a bound. Both ends of an interval are given or neither.
ALTER TABLE analytics_clv_fits
    ALTER COLUMN r_low DROP NOT NULL, ALTER COLUMN r_high DROP NOT NULL,
    ALTER COLUMN alpha_low DROP NOT NULL, ALTER COLUMN alpha_high DROP NOT NULL,
    ALTER COLUMN a_low DROP NOT NULL, ALTER COLUMN a_high DROP NOT NULL,
    ALTER COLUMN b_low DROP NOT NULL, ALTER COLUMN b_high DROP NOT NULL,
    ALTER COLUMN p_low DROP NOT NULL, ALTER COLUMN p_high DROP NOT NULL,
    ALTER COLUMN q_low DROP NOT NULL, ALTER COLUMN q_high DROP NOT NULL,
    ALTER COLUMN gamma_low DROP NOT NULL, ALTER COLUMN gamma_high DROP NOT NULL;

ALTER TABLE analytics_clv_fits
    ADD CONSTRAINT analytics_clv_fits_intervals_whole CHECK (
        (r_low IS NULL) = (r_high IS NULL) AND (alpha_low IS NULL) = (alpha_high IS NULL)
        AND (a_low IS NULL) = (a_high IS NULL) AND (b_low IS NULL) = (b_high IS NULL)
        AND (p_low IS NULL) = (p_high IS NULL) AND (q_low IS NULL) = (q_high IS NULL)
        AND (gamma_low IS NULL) = (gamma_high IS NULL)
    );
