-- 035: an erasure's withdrawal is final (issue 26, item 14). An erasure records a withdrawal of
-- every purpose with source 'erasure' (gdpr.process_privacy_requests); a consent key could then
-- record a grant for the former user id, and the consumers stored and counted that id's new
-- events again. After an erasure only a new identity can consent: a grant for a user id with an
-- erasure in the ledger is refused here, whoever records it (the collector answers 409
-- consent_after_erasure), and the consumers treat the erasure as final whatever follows it in
-- the ledger (core.consent), which covers grants recorded before this migration too.
-- SECURITY DEFINER: writers of consent (the collector's login) need not read the ledger.
CREATE OR REPLACE FUNCTION consent_grant_not_erased() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.granted AND EXISTS (SELECT FROM consent_ledger WHERE user_id = NEW.user_id AND source = 'erasure') THEN
        RAISE EXCEPTION 'this user id was erased: only a new identity can give consent'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'consent_after_erasure';
    END IF;
    RETURN NEW;
END;
$$;
REVOKE ALL ON FUNCTION consent_grant_not_erased() FROM PUBLIC;
DROP TRIGGER IF EXISTS consent_ledger_not_erased ON consent_ledger;
CREATE TRIGGER consent_ledger_not_erased BEFORE INSERT ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_grant_not_erased();

-- The consumers read which withdrawals are an erasure's.
GRANT SELECT (source) ON consent_ledger TO ingest_writer;
