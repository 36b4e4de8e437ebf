-- 009: the design document's data model, with its names and types, so that queries, dashboards
-- and tests written against the design work here. It converts a database in place, with every
-- row kept.
--   * user_id becomes a UUID in users_pii, users_public and events_raw. A number n becomes the
--     UUID whose 128 bits are n (42 -> 00000000-0000-0000-0000-00000000002a). The event model
--     maps a numeric user_id still on the wire the same way, so events still in Kafka join their
--     users.
--   * The metrics tables get total_events and total_amount (formerly event_count and revenue).
--   * privacy_requests gets id (formerly request_id). privacy_audit_log.request_id still refers
--     to it.
--   * users_public and events_raw get created_at. Existing rows take the user's created_at and
--     the event's ingested_at.
-- The platform's own columns (event_date, offsets, status, due dates, ...) stay.

ALTER TABLE users_pii
    ALTER COLUMN user_id TYPE UUID USING lpad(to_hex(user_id), 32, '0')::uuid;

ALTER TABLE users_public
    ALTER COLUMN user_id TYPE UUID USING lpad(to_hex(user_id), 32, '0')::uuid,
    ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE users_public AS p SET created_at = u.created_at FROM users_pii AS u WHERE u.user_id = p.user_id;

ALTER TABLE events_raw
    ALTER COLUMN user_id TYPE UUID USING lpad(to_hex(user_id), 32, '0')::uuid,
    ADD COLUMN created_at TIMESTAMPTZ NOT NULL DEFAULT now();
UPDATE events_raw SET created_at = ingested_at;

ALTER TABLE metrics_streaming_daily RENAME COLUMN event_count TO total_events;
ALTER TABLE metrics_streaming_daily RENAME COLUMN revenue TO total_amount;
ALTER TABLE metrics_batch_daily RENAME COLUMN event_count TO total_events;
ALTER TABLE metrics_batch_daily RENAME COLUMN revenue TO total_amount;

ALTER TABLE privacy_requests RENAME COLUMN request_id TO id;
-- The trigger function names the column. It is recreated with the new name; its grants and its
-- triggers stay.
CREATE OR REPLACE FUNCTION privacy_request_received() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO privacy_audit_log (request_id, action, actor, details)
    VALUES (NEW.id, 'received', 'database', jsonb_build_object('request_type', NEW.request_type));
    -- One payload for all: PostgreSQL folds identical notifications of a transaction into one.
    PERFORM pg_notify('privacy_requests', '');
    RETURN NULL;
END;
$$;

-- Column privileges follow a renamed column, and table-level grants cover the new columns.
