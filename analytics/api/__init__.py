"""The analysts' API (``python -m analytics.api``): noise-protected releases for analysts, the
budgets and the privacy ledger for the DPO, behind bearer tokens (analytics.analysts)."""
