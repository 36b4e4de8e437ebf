-- 008: an event that arrives after its user was erased is stored with the strings of its metadata
-- erased (the person's own values are no longer known, so any free text might be theirs): the
-- raw-events consumer writes that one column too, in the transaction that stores the event.
GRANT UPDATE (metadata) ON events_raw TO ingest_writer;
