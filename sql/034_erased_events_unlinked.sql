-- 034: after an erasure nothing stored leads to the person's Kafka messages (issue 26, item 7).
-- Each message is keyed by the person's former user id, and its payload names the event's id; a
-- stored event that kept its event_id, or its kafka_partition and kafka_offset, led straight to
-- that message, and so to the former id. An erasure (and the raw sink, for an event of an erased
-- person that arrives later) now gives each of the person's events a fresh random event_id and
-- sets kafka_partition and kafka_offset to NULL.
--
-- The event id was also the second guard of exactly-once (the first is the stored offsets): a
-- copy of an event sent twice (a producer's or a client's retry) met its key and was ignored.
-- With the id replaced, that guard lives in erased_event_digests: the SHA-256 of each former
-- event id with its day, and nothing else. A new copy of an erased event is found there and
-- ignored, never stored again under a fresh id (which would have counted it twice in the batch
-- metrics). A digest names no stored row (the row's id is random), so it leads nowhere but to a
-- message that is already known to be the erased person's (its key is their former id).
ALTER TABLE events_raw ALTER COLUMN kafka_partition DROP NOT NULL;
ALTER TABLE events_raw ALTER COLUMN kafka_offset DROP NOT NULL;
-- A dead letter that names an erased person is replaced by a marker; its offset goes too.
ALTER TABLE dead_letter_events ALTER COLUMN kafka_partition DROP NOT NULL;
ALTER TABLE dead_letter_events ALTER COLUMN kafka_offset DROP NOT NULL;

CREATE TABLE IF NOT EXISTS erased_event_digests (
    event_digest  BYTEA NOT NULL CHECK (octet_length(event_digest) = 32),  -- sha256(uuid_send(event_id))
    event_date    DATE NOT NULL,  -- as in events_raw's key (event_id, event_date)
    PRIMARY KEY (event_digest, event_date)
);

GRANT SELECT, INSERT ON erased_event_digests TO gdpr_processor, ingest_writer;
GRANT UPDATE (event_id, kafka_partition, kafka_offset) ON events_raw TO gdpr_processor;
GRANT UPDATE (kafka_partition, kafka_offset) ON dead_letter_events TO gdpr_processor;

-- Events erased before this migration: the re-keyed ones sit under pseudonyms, whose ids begin
-- with ffffffff (core.pii.PSEUDONYM_PREFIX), so the user index finds them in one range.
WITH erased AS (
    SELECT event_id, event_date FROM events_raw WHERE user_id >= 'ffffffff-0000-0000-0000-000000000000'::uuid
), guarded AS (
    INSERT INTO erased_event_digests (event_digest, event_date)
    SELECT sha256(uuid_send(event_id)), event_date FROM erased
    ON CONFLICT DO NOTHING
)
UPDATE events_raw AS e SET event_id = gen_random_uuid(), kafka_partition = NULL, kafka_offset = NULL
FROM erased WHERE e.event_id = erased.event_id AND e.event_date = erased.event_date;
-- Dead letters scrubbed by earlier erasures (gdpr.erasure.ERASED_PAYLOAD).
UPDATE dead_letter_events SET kafka_partition = NULL, kafka_offset = NULL
WHERE payload = '[erased: this payload mentioned a person who asked to be forgotten]';
