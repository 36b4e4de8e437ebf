-- 017: guards the database keeps whatever a component's code does.
--   * The privacy API's login files requests only as what they are: unverified API requests. Its
--     INSERT covers status and channel (it sets them), so without this it could file a
--     "pending", operator-trusted request and skip the mailed code.
--   * A restriction of processing (Art. 18) holds until a DPO lifts it: a grant of analytics
--     consent for a restricted user (from the collector, a consent platform, any writer) is
--     refused instead of silently restarting the processing.
--   * The DPO console never reads verification codes, not even their hashes.

CREATE OR REPLACE FUNCTION privacy_request_filed_by_api() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The API's login is a member of privacy_api and of nothing else (sql/015); the owner and a
    -- superuser are members of every group and keep their own choice.
    IF pg_has_role(session_user, 'privacy_api', 'MEMBER') AND NOT pg_has_role(session_user, 'gdpr_processor', 'MEMBER') THEN
        NEW.channel := 'api';
        NEW.status := 'unverified';
        NEW.verified_at := NULL;
        NEW.processed_at := NULL;
        NEW.export_path := NULL;
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS privacy_requests_filed_by_api ON privacy_requests;
CREATE TRIGGER privacy_requests_filed_by_api BEFORE INSERT ON privacy_requests
    FOR EACH ROW EXECUTE FUNCTION privacy_request_filed_by_api();

-- SECURITY DEFINER: writers of consent need not read the restrictions themselves.
CREATE OR REPLACE FUNCTION consent_grant_not_restricted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.granted AND NEW.purpose = 'analytics'
       AND EXISTS (SELECT FROM processing_restrictions WHERE user_id = NEW.user_id AND lifted_at IS NULL) THEN
        RAISE EXCEPTION 'processing of this user is restricted (Art. 18) until a DPO lifts it'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'consent_while_restricted';
    END IF;
    RETURN NEW;
END;
$$;
DROP TRIGGER IF EXISTS consent_ledger_not_restricted ON consent_ledger;
CREATE TRIGGER consent_ledger_not_restricted BEFORE INSERT ON consent_ledger
    FOR EACH ROW EXECUTE FUNCTION consent_grant_not_restricted();

REVOKE ALL ON privacy_verifications FROM dpo_console;
