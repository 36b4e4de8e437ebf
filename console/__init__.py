"""The DPO console (``python -m console``): the privacy-request queue, each request's audit
timeline and the DPO's actions, behind a login. Internal: it listens on the loopback by default."""
