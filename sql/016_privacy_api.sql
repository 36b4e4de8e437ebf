-- 016: what the privacy-request API (python -m gdpr.api) needs beyond sql/014.
--   * How many requests one address filed lately, by its keyed HMAC (never the address): each
--     request mails a code, and the API limits how often one inbox is written to.
--   * An access export is downloaded once, then deleted: the API forgets the file's path, so
--     nothing points at a file that is gone (the processor's expiry sweep skips it).

GRANT SELECT (email_hmac) ON privacy_requests TO privacy_api;
GRANT UPDATE (export_path) ON privacy_requests TO privacy_api;
