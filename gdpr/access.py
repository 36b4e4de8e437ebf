"""Access (Art. 15/20): the JSON export of everything held about a person, written by the
processor (gdpr.process_privacy_requests) to ``REPORTS_DIR/access/`` (a relative REPORTS_DIR is
taken from the project root, so every processor finds the same files); it may be downloaded for
ACCESS_EXPORT_DAYS, then it is deleted (gdpr.housekeeping; the files themselves: gdpr.exports).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import db
from gdpr import person_days
from gdpr import requests as request_store
from gdpr.erasure import ERASED_PAYLOAD, user_id_pattern


def export_user(cur: db.Cursor, request_id: int, user_id: str, proof: str, directory: Path) -> Path:
    """Write everything held about the user as JSON (Art. 15 and 20); return the file. Runs
    under the erasure lock (process_batch), which ``person_days.days_of`` needs."""
    cur.execute("SELECT user_id::text, email, full_name, address, created_at FROM users_pii WHERE user_id = %s", (user_id,))
    pii = cur.fetchone()
    cur.execute("SELECT country, signup_date FROM users_public WHERE user_id = %s", (user_id,))
    public = cur.fetchone()
    # The person's own days and the days no list covers, not every day's user index: the days as
    # constants, so that the plan holds those days' partitions only.
    cur.execute(
        "SELECT event_id, event_type, event_timestamp, amount, metadata FROM events_raw"
        " WHERE user_id = %s AND event_date = ANY(%s::date[]) ORDER BY event_timestamp, event_id",
        (user_id, person_days.days_of(cur, user_id)),
    )
    events = [
        {
            "event_id": str(event_id),
            "event_type": kind,
            "event_timestamp": ts.isoformat(),
            "amount": None if amount is None else str(amount),
            "metadata": metadata,
        }
        for event_id, kind, ts, amount, metadata in cur.fetchall()
    ]
    requests = [
        {
            "request_id": rid,
            "request_type": kind,
            "status": status,
            "requested_at": requested.isoformat(),
            "processed_at": processed.isoformat() if processed else None,
            "due_at": due.isoformat(),
        }
        for rid, kind, status, requested, processed, due in request_store.requests_of(cur, proof, request_id)
    ]
    letters = _dead_letters_of(cur, user_id)
    cur.execute(
        "SELECT purpose, granted, effective_at, source FROM consent_ledger WHERE user_id = %s ORDER BY effective_at, id",
        (user_id,),
    )
    consents = [
        {"purpose": purpose, "granted": granted, "effective_at": at.isoformat(), "source": source}
        for purpose, granted, at, source in cur.fetchall()
    ]
    document = {
        "request_id": request_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "controller_note": "Everything this analytics platform holds about you (GDPR Art. 15 and 20).",
        "personal_data": {
            "user_id": pii[0],
            "email": pii[1],
            "full_name": pii[2],
            "address": pii[3],
            "created_at": pii[4].isoformat(),
        }
        if pii
        else None,
        "public_profile": {"country": public[0].strip(), "signup_date": public[1].isoformat()} if public else None,
        "events": events,
        "consent_history": consents,
        "privacy_requests": requests,
        "dead_letters": letters,
        "analytics": analytics_of(cur, user_id),
        "not_included": NOT_IN_EXPORT,
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"access_request_{request_id}.json"
    partial = path.with_suffix(".json.partial")
    # Only the owner may read an export: it is the person's data.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, ensure_ascii=False)
    partial.replace(path)
    return path


# Art. 15(1)(h): meaningful information about the logic of the profiling, in the export itself.
ANALYTICS_LOGIC = [
    "Day summaries (person_days): for each day you used the service we keep how many pages you viewed, how often you"
    " added to the cart and bought, what your purchases were worth, and how far you got in the order page view, add"
    " to cart, purchase within the conversion window. They feed statistics about groups of people (who comes back"
    " week after week, how many buy after viewing); no figure that leaves the analytics system describes fewer than"
    " a minimum number of people.",
    "RFM scores (rfm): from your purchases we compute how many days ago you last bought (recency), how many purchases"
    " you made (frequency) and their total value (monetary). Each is compared with every other buyer's and becomes a"
    " score from 1 to 5 (5: better than about four fifths of buyers; equal values get equal scores). Recency and"
    " frequency together place you in a named segment, such as 'champions' or 'at risk'.",
    "Lifetime value (lifetime_value): a statistical model (BG/NBD for how often people buy and when they stop;"
    " Gamma-Gamma for how much they spend) is fitted on all buyers' purchase histories. From your own history (the"
    " days you bought again after your first purchase, the days since your first and your last purchase, the mean"
    " value of a repeat purchase) it estimates the chance that you are still a customer, how many purchase days to"
    " expect from you over the horizon and what they would be worth. It is an estimate, not a fact about you; 'fit'"
    " says when the model was fitted and on how many buyers.",
    "Scores are recomputed from the day summaries (nightly), each time replacing the previous ones. Only the sizes and"
    " values of segments and groups leave the analytics system; no decision about you is taken from your scores.",
    "An objection to analytics (Art. 21), a restriction of processing (Art. 18) or a withdrawal of your analytics"
    " consent stops the scoring of you: an objection or a restriction deletes your scores at once, and no later"
    " scoring computes them while it lasts. Your day summaries stay, as your events do, and keep counting in the"
    " statistics about groups. An erasure deletes your scores and detaches your summaries from you.",
]


def analytics_of(cur: db.Cursor, user_id: str) -> dict[str, Any]:
    """The person's rows in the analyses (sql/037, sql/039): their day summaries (oldest first),
    their RFM scores and their lifetime value with the fit it came from (None without), and
    ANALYTICS_LOGIC. Money and seconds as text, exactly as stored."""
    cur.execute(
        "SELECT event_date, page_views, add_to_carts, purchases, revenue, funnel_step, view_to_cart_s, cart_to_purchase_s"
        " FROM analytics_person_days WHERE user_id = %s ORDER BY event_date",
        (user_id,),
    )
    days = [
        {
            "date": day.isoformat(),
            "page_views": views,
            "add_to_carts": carts,
            "purchases": purchases,
            "revenue": str(revenue),
            "funnel_step": step,
            "view_to_cart_s": _text(to_cart),
            "cart_to_purchase_s": _text(to_purchase),
        }
        for day, views, carts, purchases, revenue, step, to_cart, to_purchase in cur.fetchall()
    ]
    cur.execute(
        "SELECT as_of, computed_at, recency_days, frequency, monetary, r_score, f_score, m_score, segment"
        " FROM analytics_rfm_scores WHERE user_id = %s",
        (user_id,),
    )
    row = cur.fetchone()
    rfm = (
        None
        if row is None
        else {
            "as_of": row[0].isoformat(),
            "computed_at": row[1].isoformat(),
            "recency_days": row[2],
            "frequency": row[3],
            "monetary": str(row[4]),
            "r_score": row[5],
            "f_score": row[6],
            "m_score": row[7],
            "segment": row[8],
        }
    )
    cur.execute(
        "SELECT s.as_of, s.computed_at, s.frequency, s.recency_days, s.age_days, s.mean_spend, s.p_alive,"
        " s.expected_purchases, s.expected_spend, s.clv, f.id, f.as_of, f.computed_at, f.horizon_days, f.people,"
        " f.repeat_buyers FROM analytics_clv_scores AS s JOIN analytics_clv_fits AS f ON f.id = s.fit_id"
        " WHERE s.user_id = %s",
        (user_id,),
    )
    row = cur.fetchone()
    value = (
        None
        if row is None
        else {
            "as_of": row[0].isoformat(),
            "computed_at": row[1].isoformat(),
            "repeat_purchase_days": row[2],
            "days_first_to_last_purchase": row[3],
            "days_since_first_purchase": row[4],
            "mean_repeat_purchase_value": _text(row[5]),
            "probability_still_a_customer": row[6],
            "expected_purchase_days": row[7],
            "expected_value_per_purchase_day": row[8],
            "value_over_horizon": row[9],
            "horizon_days": row[13],
            "fit": {
                "fit_id": row[10],
                "data_up_to": row[11].isoformat(),
                "fitted_at": row[12].isoformat(),
                "buyers": row[14],
                "repeat_buyers": row[15],
            },
        }
    )
    return {"about": ANALYTICS_LOGIC, "person_days": days, "rfm": rfm, "lifetime_value": value}


def _text(value: object) -> str | None:
    return None if value is None else str(value)


# What an access export says it leaves out, and why (Art. 15: everything held, or why not).
NOT_IN_EXPORT = [
    "Messages we rejected at ingest (dead letters) are included when their stored text names your user id in a"
    ' "user_id" field, whether or not the rest of the message was valid JSON; one that does not name it (its'
    " user id missing or malformed, or cut off by the 64 KiB limit) cannot be told apart from anybody else's and is"
    " not included. They are stored, and shown here, with personal data such as emails and phone numbers redacted.",
    "The event stream (Kafka) keeps each message it received, keyed by your user id, until its retention deletes it"
    " (a week by default): the same events as listed here, as they were sent, before redaction. This export is"
    " made from the database.",
    "Database backups hold earlier copies of these rows until they expire.",
]


def _dead_letters_of(cur: db.Cursor, user_id: str) -> list[dict[str, Any]]:
    """The dead letters whose payload names this user id (the pattern erasure scrubs by), oldest
    first: the payload as stored (redacted), parsed when it is JSON, else as text."""
    cur.execute(
        "SELECT received_at, reason, detail, payload FROM dead_letter_events WHERE payload ~* %s AND payload <> %s ORDER BY id",
        (user_id_pattern([user_id]), ERASED_PAYLOAD),
    )
    letters = []
    for received_at, reason, detail, payload in cur.fetchall():
        letter: dict[str, Any] = {"received_at": received_at.isoformat(), "reason": reason, "detail": detail}
        try:
            letter["payload"] = json.loads(payload)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
            letter["payload_text"] = payload
            letter["note"] = "not valid JSON as received (or cut at the size limit): found by its user_id field's text"
        letters.append(letter)
    return letters
