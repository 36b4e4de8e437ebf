-- 033: the privacy API's limit on requests per address counts inboxes, not spellings.
--   An internationalised address in another case or in punycode (bomb@EXÄMPLE.de,
--   bomb@xn--exmple-cua.de) has its own match key and so its own email_hmac, yet it is one
--   inbox: nine spellings were nine allowances of mailed codes. mailbox_hmac is the keyed HMAC of
--   gdpr.email_address.mailbox (local part case-folded, domain in IDNA ASCII form); the API
--   counts and locks by it. Rows filed before this file have none: for their first hour they
--   count as nothing, as a fresh start of the limit would.

ALTER TABLE privacy_requests ADD COLUMN IF NOT EXISTS mailbox_hmac TEXT;
CREATE INDEX IF NOT EXISTS privacy_requests_mailbox_hmac_idx
    ON privacy_requests (mailbox_hmac, requested_at) WHERE mailbox_hmac IS NOT NULL;

GRANT SELECT (mailbox_hmac) ON privacy_requests TO privacy_api;
GRANT INSERT (mailbox_hmac) ON privacy_requests TO privacy_api;
