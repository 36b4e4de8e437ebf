-- 007: erasure removes the person's own values (email, name, address, in their obvious spellings)
-- from the metadata of the events it re-keys, so the GDPR processor writes that one column too.
GRANT UPDATE (metadata) ON events_raw TO gdpr_processor;
