"""GDPR: data-subject requests (erasure) processed from privacy_requests, and what they leave behind."""
