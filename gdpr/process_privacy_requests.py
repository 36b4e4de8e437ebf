"""Process data-subject requests from ``privacy_requests``: erasure (Art. 17), access (Art. 15/20),
rectification (Art. 16), restriction (Art. 18) and objection (Art. 21).

Erasure makes the platform forget the person: email, name and address are set to NULL in
``users_pii``; their public profile and events are moved to a fresh random user id with no
``users_pii`` row (pseudonymised data is personal data, Recital 26), each event with a fresh
random event id and no Kafka partition or offset, so the aggregates stay exactly as they were
and no stored id leads to the person's Kafka messages (their content still matches the rows
until the topic's retention deletes them: README, What erasure does). Before the values are forgotten they
are looked for, in their obvious spellings, in everything stored about the person: they are
removed from the metadata of the person's events, dead letters that mention them are scrubbed,
and the erasure checks that none is left (a count, never a value, goes to the audit trail).
Access exports of the person, earlier or from the same batch, are deleted. After a run that
erased or corrected anybody, the rewritten tables are vacuumed. An erasure of a person under a
legal hold waits ``on_hold`` and runs once the hold ends.

Access writes a JSON export of everything held about the person to ``REPORTS_DIR/access/`` (a
relative REPORTS_DIR is taken from the project root, so every processor finds the same files);
it may be downloaded for ACCESS_EXPORT_DAYS, then it is deleted. Rectification, restriction and
objection are in ``gdpr.rights``.

A row inserted by SQL is an operator's request, trusted as verified (the audit trail says so);
one filed through ``python -m gdpr.api`` becomes ``pending`` only once its mailed code came back.
Addresses are matched as ``gdpr.email_address`` says: ASCII without regard to case, an
internationalised address exactly (NFC). Every request ends ``completed``, ``not_found`` or
``rejected`` (not an address, or corrections that cannot apply), with an outcome and
``processed_at``; the requester's email is then removed and only a keyed HMAC of it is kept, for
proof. Each step is appended to ``privacy_audit_log``. Requests are locked with ``FOR UPDATE SKIP
LOCKED``, so several processors never handle one twice; processing is idempotent.
``process_privacy_requests()`` (no argument needed) is the same as the command without
``--watch``, for code written against the design. ``--watch`` keeps running and handles a new
request within about a second (LISTEN/NOTIFY from a trigger, with a periodic sweep as a safety
net, which also releases ended holds and expires unconfirmed requests and old exports), and serves
Prometheus metrics on ``--metrics-port`` (gdpr.metrics: requests answered by type and outcome,
open requests, those due soon and overdue; counts only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import psycopg2.extensions
from psycopg2 import sql
from psycopg2.extras import execute_values

from core import cli, consent, db, locks, metrics, retry
from core.config import Settings, load_settings
from core.errors import ServiceUnavailable
from core.pii import (
    SQL_WORD_SEPARATORS,
    KnownValues,
    known_values,
    mentions_known_values,
    new_pseudonymous_user_id,
    scrub_known_values,
    words_of,
)
from gdpr import housekeeping, mail, person_days, rights
from gdpr import metrics as gdpr_metrics
from gdpr import requests as request_store
from gdpr.audit import AuditLog
from gdpr.email_address import InvalidEmail, email_hmac, is_ascii, normalise
from gdpr.exports import remove_export
from gdpr.requests import Status

__all__ = ["AuditLog", "email_hmac", "normalise_email", "process_privacy_requests"]

logger = logging.getLogger("gdpr.process_privacy_requests")

# Requests handled per transaction: a crash re-does at most this many, and they are idempotent.
# Each transaction costs a commit and a few set-based statements whatever its size: 1,000 a batch
# (rather than 200) took the erasure of 10,000 people over 10M events from 10.3 s to 10.0 s.
DEFAULT_BATCH = 1000
# A batch rolled back by a deadlock, a serialization failure or a lock wait is done again, this many
# times, after the platform's backoff (core.retry). Short waits, as a conflict between transactions
# clears in moments (and a lock wait already waited); decorrelated jitter, as the two parties of a
# deadlock that came back at the same instant would meet again.
BATCH_RETRIES = 3
BATCH_BACKOFF = retry.Backoff(first_s=0.1, max_s=2.0, jitter="decorrelated")
# The longest a batch waits for the erasure lock, held shared by each ingest batch, retention and
# each step of gdpr.person_days (a few seconds at most): past it the batch is rolled back and
# retried, before the statement timeout (which is not retried) would end the processor.
ERASURE_LOCK_WAIT_MS = 20_000
# --watch: the notification normally wakes the processor; the sweep catches anything missed.
SWEEP_INTERVAL_S = 30.0
ERASED_PAYLOAD = "[erased: this payload mentioned a person who asked to be forgotten]"
_JOIN_SETTINGS = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")
# Metadata is read and written back exactly: numbers keep their digits (jsonb keeps 1.10 as is).
_METADATA_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_METADATA_ENCODER = msgspec.json.Encoder(decimal_format="number")


class RejectedRequest(ValueError):
    """The request cannot be acted on; the message is the outcome recorded (never the input)."""


def normalise_email(raw: str | None) -> str:
    """The match key of a requested address (gdpr.email_address: ASCII lower-cased, an
    internationalised address NFC as given); RejectedRequest for what cannot be a mailbox."""
    try:
        return normalise(raw, deliverable=False)
    except InvalidEmail as e:
        raise RejectedRequest(str(e)) from e


@dataclass(frozen=True)
class Outcome:
    status: Status
    outcome: str
    proof: str | None = None  # HMAC of the normalised email, kept instead of the email
    export_path: str | None = None


@dataclass(frozen=True)
class Person:
    user_id: str  # canonical UUID text
    email: str | None  # as stored
    full_name: str | None
    address: str | None

    def known_values(self) -> KnownValues:
        return known_values(self.email, self.full_name, self.address)


def find_people(cur: db.Cursor, emails: list[str]) -> dict[str, Person]:
    """The users with these match keys, locked for the transaction: an ASCII key matches
    ``lower(email)`` (the unique index), an internationalised one the stored address in NFC."""
    ascii_keys = [e for e in emails if is_ascii(e)]
    other_keys = [e for e in emails if not is_ascii(e)]
    cur.execute(
        "SELECT CASE WHEN lower(email) = ANY(%(ascii)s) THEN lower(email) ELSE normalize(email, NFC) END,"
        " user_id::text, email, full_name, address FROM users_pii"
        " WHERE lower(email) = ANY(%(ascii)s) OR (cardinality(%(other)s::text[]) > 0 AND normalize(email, NFC) = ANY(%(other)s))"
        " ORDER BY user_id FOR UPDATE",
        {"ascii": ascii_keys, "other": other_keys},
    )
    return {key: Person(str(user_id), email, name, address) for key, user_id, email, name, address in cur.fetchall()}


@dataclass(frozen=True)
class Erased:
    """What an erasure did for one person: counts only, for the audit trail."""

    events_rekeyed: int = 0
    values_scrubbed: int = 0  # the person's values removed from their events' metadata
    residual_values: int = 0  # the person's values still found afterwards: must be 0


@contextmanager
def _walking_the_user_index(cur: db.Cursor, settings: tuple[str, ...] = _JOIN_SETTINGS) -> Iterator[None]:
    """The planner is told to walk the user_id index for every person. Left to itself it once
    chose a scan of all of events_raw per batch (65 s for 10,000 erasures over 10M events,
    measured); per-person statements avoided that but cost a round trip each."""
    for setting in settings:
        cur.execute(f"SET LOCAL {setting} = off")
    yield
    for setting in settings:
        cur.execute(f"SET LOCAL {setting} = on")


def erase_people(cur: db.Cursor, people: list[Person], partitions: set[str] | None = None) -> dict[str, Erased]:
    """Forget these people, set-based; return what was done per former user id, and add to
    ``partitions`` the partitions of events_raw their events are in (to vacuum those only). Runs
    inside the caller's transaction, which holds the erasure lock (ingest batches wait for it)."""
    if not people:
        return {}
    known = {p.user_id: p.known_values() for p in people}
    moves = [(p.user_id, new_pseudonymous_user_id()) for p in people]
    olds, news = [old for old, _new in moves], [new for _old, new in moves]
    anchors = [known[old].sql_regex() for old in olds]
    cur.execute(
        "UPDATE users_pii SET email = NULL, full_name = NULL, address = NULL, anonymized_at = now()"
        " WHERE user_id = ANY(%s::uuid[])",
        (olds,),
    )
    with _walking_the_user_index(cur):
        cur.execute(
            "UPDATE users_public AS u SET user_id = m.new, is_erased = true"
            " FROM unnest(%s::uuid[], %s::uuid[]) AS m (old, new) WHERE u.user_id = m.old",
            (olds, news),
        )
    rows = _rekey_events(cur, olds, news, anchors)
    returned = [(old, suspect, day) for old, suspect, day, _table in rows]
    if partitions is not None:
        partitions.update(table for *_rest, table in rows)
    rekeyed = Counter(str(old) for old, _suspect, _day in returned)
    suspects = Suspects(
        {str(event_id): str(old) for old, event_id, _day in returned if event_id is not None},
        sorted({day for _old, event_id, day in returned if event_id is not None}),
    )
    scrubbed = _scrub_events(cur, suspects, known)
    # Most of the time no dead letter is left to look at: then no word list is built for them.
    cur.execute("SELECT EXISTS (SELECT FROM dead_letter_events WHERE payload <> %s)", (ERASED_PAYLOAD,))
    [(letters,)] = cur.fetchall()
    if letters:
        _scrub_dead_letters(cur, olds, known)
    residual = _residual_values(cur, suspects, known, letters)
    # An erasure withdraws every consent the person gave, analytics at least, from now on: the
    # consumers drop any later event of the former id (a late one from before still counts, and
    # is stored under a pseudonym). The ledger keeps the former id, as users_pii keeps its row.
    # Recorded last, so that it takes effect as close as possible to the commit.
    cur.execute(
        "INSERT INTO consent_ledger (user_id, purpose, granted, source)"
        " SELECT user_id, purpose, false, %s FROM ("
        "  SELECT unnest(%s::uuid[]) AS user_id, %s AS purpose"
        "  UNION SELECT user_id, purpose FROM consent_ledger WHERE user_id = ANY(%s::uuid[])"
        " ) AS withdrawn",
        (consent.ERASURE_SOURCE, olds, consent.ANALYTICS, olds),
    )
    return {old: Erased(rekeyed[old], scrubbed[old], residual[old]) for old in olds}


# Re-keying returns per event: the former id, the event's new id when its metadata may hold the
# person's values (else None), the event's day and the partition it is in. Two ways to find the
# events: the days searched in full, and each person's own listed days (_rekey_events). Each event
# also gets a fresh random event_id and loses its Kafka partition and offset: the message's payload
# names the old id and its key is the former user id, so either would lead back to the person
# (sql/034). The old ids' digests are recorded first (_GUARD_*, the same rows), so that a copy of an
# erased event sent again is still recognised and ignored by the raw sink.
_GUARD_SEARCHED = (
    "INSERT INTO erased_event_digests (event_digest, event_date) SELECT sha256(uuid_send(e.event_id)), e.event_date"
    " FROM events_raw AS e"
    " WHERE e.user_id = ANY(ARRAY(SELECT unnest(%s::uuid[]))) AND e.event_date = ANY(%s::date[]) ON CONFLICT DO NOTHING"
)
_GUARD_LISTED = (
    "INSERT INTO erased_event_digests (event_digest, event_date) SELECT sha256(uuid_send(e.event_id)), e.event_date"
    " FROM unnest(%s::uuid[], %s::date[]) AS m (old, day) JOIN events_raw AS e"
    " ON e.user_id = m.old AND e.event_date = m.day ON CONFLICT DO NOTHING"
)
_REKEY_SEARCHED = (
    "UPDATE events_raw AS e SET user_id = m.new, event_id = gen_random_uuid(), kafka_partition = NULL, kafka_offset = NULL"
    " FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS m (old, new, anchors)"
    " WHERE e.user_id = m.old AND e.user_id = ANY(ARRAY(SELECT unnest(%s::uuid[]))) AND e.event_date = ANY(%s::date[])"
    " RETURNING m.old::text, CASE WHEN e.metadata::text ~* m.anchors THEN e.event_id END, e.event_date,"
    " e.tableoid::regclass::text"
)
_REKEY_LISTED = (
    "UPDATE events_raw AS e SET user_id = m.new, event_id = gen_random_uuid(), kafka_partition = NULL, kafka_offset = NULL"
    " FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::date[]) AS m (old, new, anchors, day)"
    " WHERE e.user_id = m.old AND e.event_date = m.day"
    " RETURNING m.old::text, CASE WHEN e.metadata::text ~* m.anchors THEN e.event_id END, e.event_date,"
    " e.tableoid::regclass::text"
)


def _rekey_events(cur: db.Cursor, olds: list[str], news: list[str], anchors: list[str | None]) -> list[tuple[Any, ...]]:
    """Move these people's events to their new ids; return what the statements return per event.

    The days each person's events are on are listed (gdpr.person_days) for the closed days built
    so far: on those days each person is looked up in their own days' partitions only (a nested
    loop, each pair pruned at run time to its one partition). Every other day that may hold events
    (today, yesterday, days written since their list was built, days never built) is searched in
    full: each of those partitions' user index once for the whole batch of ids (handed over at run
    time, so that planning does not weigh a thousand values for each partition), the rows found
    joined to the new ids by hash. A nested loop per person over every day had cost 7.5 s against
    2.4 s for 1,000 people over 400 days (measured); and that full search of every day had read
    nearly every leaf of every day's index, once per batch (2.5-3.7 s per 1,000 people at 50M).
    The re-keying also names the events whose metadata may hold the person's values: those with
    one of the words each of their spellings contains (KnownValues.anchors), a cheap test in
    PostgreSQL. Only those few are read, scrubbed and written back."""
    days = person_days.coverage(cur)
    cur.execute("SELECT user_id::text, days FROM person_days WHERE user_id = ANY(%s::uuid[])", (olds,))
    listed = dict(cur.fetchall())
    cur.execute("DELETE FROM person_days WHERE user_id = ANY(%s::uuid[])", (olds,))
    rows: list[tuple[Any, ...]] = []
    if days.searched:
        with _walking_the_user_index(cur, ("enable_seqscan",)):
            cur.execute(_GUARD_SEARCHED, (olds, list(days.searched)))
            cur.execute(_REKEY_SEARCHED, (olds, news, anchors, olds, list(days.searched)))
            rows += cur.fetchall()
    pairs = [
        (old, new, anchor, day)
        for old, new, anchor in zip(olds, news, anchors, strict=True)
        for day in listed.get(old, ())
        if day in days.covered
    ]
    if pairs:
        columns = tuple(list(column) for column in zip(*pairs, strict=True))
        with _walking_the_user_index(cur, ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")):
            cur.execute(_GUARD_LISTED, (columns[0], columns[3]))
            cur.execute(_REKEY_LISTED, columns)
            rows += cur.fetchall()
    return rows


class Suspects(NamedTuple):
    """The events whose metadata may hold an erased person's values: event id -> former user id,
    and the days they are on, which name the partitions of events_raw to look in."""

    owners: dict[str, str]
    days: list[date]

    def read(self, cur: db.Cursor) -> list[tuple[Any, str]]:
        """Their event ids and metadata, as text."""
        cur.execute(
            "SELECT event_id, metadata::text FROM events_raw WHERE event_id = ANY(%s::uuid[]) AND event_date = ANY(%s::date[])",
            (list(self.owners), self.days),
        )
        return list(cur.fetchall())


def _scrub_events(cur: db.Cursor, suspects: Suspects, known: dict[str, KnownValues]) -> Counter[str]:
    """Remove the person's values from the metadata of these events; write back only the rows
    that changed. Return the values removed per former id."""
    scrubbed: Counter[str] = Counter()
    if not suspects.owners:
        return scrubbed
    changed = []
    for event_id, text in suspects.read(cur):
        old = suspects.owners[str(event_id)]
        metadata, found = scrub_known_values(_METADATA_DECODER.decode(text), known[old])
        if found:
            scrubbed[old] += found
            changed.append((str(event_id), _METADATA_ENCODER.encode(metadata).decode("utf-8")))
    if changed:
        execute_values(
            cur,
            sql.SQL(
                "UPDATE events_raw AS e SET metadata = v.metadata::jsonb FROM (VALUES %s) AS v (event_id, metadata)"
                " WHERE e.event_id = v.event_id::uuid AND e.event_date = ANY({}::date[])"
            ).format(sql.Literal(suspects.days)),
            changed,
            page_size=1000,
        )
    return scrubbed


def _dead_letter_mentions(cur: db.Cursor, user_ids: list[str], known: dict[str, KnownValues]) -> list[tuple[int, list[str]]]:
    """Dead letters that mention these people: (id, the people whose whole values it holds).

    One scan finds the candidates: a payload with a former user id, or with one of the anchor
    words of anybody in the batch (a hashed lookup per word, not a pattern per person); the
    people whose anchors a candidate holds are then checked with their patterns.
    """
    by_word: dict[str, list[str]] = {}
    for user_id, values in known.items():
        for anchor in values.anchors:
            by_word.setdefault(anchor, []).append(user_id)
    words = sorted({word for values in known.values() for word in values.sql_words})
    names_id = _user_id_pattern(user_ids)
    cur.execute(
        "SELECT id, payload, coalesce(payload ~* %(id)s, false) FROM dead_letter_events WHERE payload <> %(erased)s"
        " AND (payload ~* %(id)s OR EXISTS (SELECT FROM regexp_split_to_table(lower(payload), %(separators)s) AS w (word)"
        " WHERE w.word = ANY(%(words)s::text[])))",
        {"id": names_id, "erased": ERASED_PAYLOAD, "separators": SQL_WORD_SEPARATORS, "words": words},
    )
    found = []
    for row_id, payload, names_a_user_id in cur.fetchall():
        people = {user_id for word in words_of(payload) for user_id in by_word.get(word, ())}
        mentioned = [user_id for user_id in sorted(people) if mentions_known_values(payload, known[user_id])]
        if mentioned or names_a_user_id:
            found.append((int(row_id), mentioned))
    return found


def _user_id_pattern(user_ids: list[str]) -> str | None:
    """A PostgreSQL regex (for ``~*``) for a "user_id" field holding one of these ids: the UUID in
    any case, or the number a UUID of the old numeric ids stands for (see core.events.user_uuid).
    None when there are no ids: "payload ~* NULL" is never true."""
    if not user_ids:
        return None
    forms = []
    for user_id in user_ids:
        forms.append(user_id)
        number = uuid.UUID(user_id).int
        if number < 2**63:
            forms.append(f"{number}(?![0-9])")
    return rf'"user_id"\s*:\s*"?({"|".join(forms)})'


def _scrub_dead_letters(cur: db.Cursor, user_ids: list[str], known: dict[str, KnownValues]) -> None:
    """A dead letter that mentions an erased person (a whole value of theirs, or their user id)
    is replaced by a marker as a whole: it is a diagnosis of a bad message, and what is left
    around the person's values may still be theirs."""
    ids = [row_id for row_id, _people in _dead_letter_mentions(cur, user_ids, known)]
    if ids:
        # Its partition and offset go too: they name the message, whose key is the former user id.
        cur.execute(
            "UPDATE dead_letter_events SET payload = %s, kafka_partition = NULL, kafka_offset = NULL WHERE id = ANY(%s)",
            (ERASED_PAYLOAD, ids),
        )
        logger.info("scrubbed %d dead letters that mentioned erased people", len(ids))


def _residual_values(cur: db.Cursor, suspects: Suspects, known: dict[str, KnownValues], letters: bool) -> Counter[str]:
    """The erasure's own check, read back from the database after scrubbing: how many of each
    person's values are still written in their events' metadata or in a dead letter. Of the
    events, only those the re-keying named can hold one (every spelling contains an anchor,
    and the new user id is the erasure's own, locked against ingest)."""
    residual: Counter[str] = Counter()
    if suspects.owners:
        for event_id, text in suspects.read(cur):
            old = suspects.owners[str(event_id)]
            residual[old] += scrub_known_values(_METADATA_DECODER.decode(text), known[old])[1]
    for _row_id, people in _dead_letter_mentions(cur, [], known) if letters else []:
        residual.update(people)
    return residual


def delete_access_exports(cur: db.Cursor, proofs: list[str], audit: AuditLog) -> None:
    """Earlier access exports of erased people hold their data: delete the files, and record
    whether each was still there. An export is downloaded once and may be gone already, but the
    reports folder may also have moved: a path whose file was not found is kept on the request
    (and named in the audit) for an operator to check, never forgotten."""
    if not proofs:
        return
    deleted = []
    for request_id, path in request_store.lock_exports_of(cur, proofs):
        removed = remove_export(path)
        details = {"reason": "the person was erased", "file_removed": removed}
        if removed:
            deleted.append(request_id)
        else:
            details["not_found_at"] = path
        audit.add(request_id, "export_deleted", details)
    if deleted:
        request_store.forget_exports(cur, deleted)


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
        (_user_id_pattern([user_id]), ERASED_PAYLOAD),
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


@dataclass(frozen=True)
class Request:
    request_id: int
    request_type: str
    email: str  # normalised
    proof: str  # keyed HMAC of the email, computed once
    corrections: object = None  # rectification: the corrected values as filed


def _erase(
    cur: db.Cursor,
    erasures: list[Request],
    people: dict[str, Person],
    results: dict[int, Outcome],
    audit: AuditLog,
    *,
    partitions: set[str] | None = None,
) -> None:
    """Erase the people of these requests, delete their access exports (earlier ones, and one
    answered in this batch, which ``results`` holds), and record the outcomes."""
    erased = erase_people(cur, list({people[r.email].user_id: people[r.email] for r in erasures}.values()), partitions)
    erased_proofs = {r.proof for r in erasures}
    delete_access_exports(cur, sorted(erased_proofs), audit)
    for request_id, outcome in list(results.items()):
        if outcome.export_path is not None and outcome.proof in erased_proofs:
            removed = remove_export(outcome.export_path)
            audit.add(request_id, "export_deleted", {"reason": "the person was erased", "file_removed": removed})
            results[request_id] = Outcome(
                Status.COMPLETED, "access export written, then deleted: the person was erased", outcome.proof
            )
    for r in erasures:
        done = erased[people[r.email].user_id]
        if done.residual_values:
            logger.warning(
                "privacy request %d: %d values of the person are still stored after erasure", r.request_id, done.residual_values
            )
        audit.add(r.request_id, "erased", asdict(done))
        audit.add(r.request_id, "completed")
        results[r.request_id] = Outcome(Status.COMPLETED, "personal data erased; events re-keyed to a random id", r.proof)


def already_erased(cur: db.Cursor, proofs: list[str]) -> set[str]:
    """Which of these email proofs belong to a person an earlier request erased (their email is
    gone from users_pii, but the completed erasure kept the proof)."""
    if not proofs:
        return set()
    return request_store.erased_proofs(cur, proofs)


def _accept(
    rows: list[tuple[int, str, str | None, str, object]], key: bytes, audit: AuditLog, results: dict[int, Outcome]
) -> list[Request]:
    """The requests that name a mailbox; the others end rejected. A request an operator
    inserted by SQL is trusted as verified (the design's way), and the trail says so; one filed
    through the API was verified by its mailed code before it became pending."""
    requests: list[Request] = []
    for request_id, request_type, raw_email, channel, corrections in rows:
        try:
            email = normalise_email(raw_email)
        except RejectedRequest as e:
            audit.add(request_id, "rejected", {"reason": str(e)})
            # The proof of what was asked stays, even unusable: the trail shows that somebody
            # asked, and a later request for the same text can be matched to this one.
            asked = None if raw_email is None else email_hmac(key, raw_email)
            results[request_id] = Outcome(Status.REJECTED, str(e), asked)
            continue
        requests.append(Request(request_id, request_type, email, email_hmac(key, email), corrections))
        if channel == "sql":
            audit.add(request_id, "verified", {"method": "operator request (SQL), trusted"})
    return requests


def _email_is_bound(cur: db.Cursor, r: Request) -> bool:
    """Whether the person's address must not change now: an open erasure request names it, or a
    legal hold is kept by its proof. Both find the person by that address; a new one would let
    the erasure end not_found, or a new erasure slip past the hold."""
    return request_store.email_is_bound(cur, r.request_id, r.proof, r.email)


def _rectify(cur: db.Cursor, r: Request, person: Person, audit: AuditLog) -> Outcome:
    try:
        corrections = rights.parse_corrections(r.corrections)
        if "email" in corrections and corrections["email"] != r.email and _email_is_bound(cur, r):
            raise rights.InvalidCorrections(
                "the email cannot be corrected while an erasure request or a legal hold is open for this person"
            )
        changed = rights.rectify(cur, person.user_id, corrections)
    except rights.InvalidCorrections as e:
        audit.add(r.request_id, "rejected", {"reason": str(e)})
        return Outcome(Status.REJECTED, str(e), r.proof)
    audit.add(r.request_id, "rectified", {"fields": changed})
    audit.add(r.request_id, "completed")
    what = ", ".join(changed) if changed else "nothing: the values were already as given"
    return Outcome(Status.COMPLETED, f"corrected: {what}", r.proof)


def _answer(cur: db.Cursor, settings: Settings, r: Request, person: Person, audit: AuditLog) -> Outcome:
    """Access, rectification, restriction or objection for a person found."""
    if r.request_type == "access":
        path = export_user(cur, r.request_id, person.user_id, r.proof, settings.reports_dir / "access")
        audit.add(r.request_id, "exported", {"file": path.name, "download_days": settings.access_export_days})
        audit.add(r.request_id, "completed")
        return Outcome(Status.COMPLETED, "access export written", r.proof, str(path))
    if r.request_type == "rectification":
        return _rectify(cur, r, person, audit)
    if r.request_type == "restriction":
        rights.restrict(cur, r.request_id, person.user_id)
        audit.add(r.request_id, "restricted")
        audit.add(r.request_id, "completed")
        return Outcome(
            Status.COMPLETED,
            "processing restricted: later events are neither stored nor counted until the restriction is lifted;"
            " earlier ones stay",
            r.proof,
        )
    rights.object_to_analytics(cur, person.user_id)
    audit.add(r.request_id, "objected", {"purpose": consent.ANALYTICS})
    audit.add(r.request_id, "completed")
    return Outcome(Status.COMPLETED, "analytics consent withdrawn (objection)", r.proof)


def _handle(
    cur: db.Cursor,
    settings: Settings,
    requests: list[Request],
    results: dict[int, Outcome],
    audit: AuditLog,
    *,
    partitions: set[str] | None = None,
) -> None:
    """Find the people and answer every request; erasures last, together."""
    people = find_people(cur, sorted({r.email for r in requests}))
    erased_before = already_erased(cur, [r.proof for r in requests if r.email not in people and r.request_type == "erasure"])
    for r in requests:
        person = people.get(r.email)
        if person is None and r.request_type == "erasure" and r.proof in erased_before:
            audit.add(r.request_id, "completed", {"already_erased": True})
            results[r.request_id] = Outcome(Status.COMPLETED, "already erased by an earlier request", r.proof)
        elif person is None:
            audit.add(r.request_id, "not_found")
            results[r.request_id] = Outcome(Status.NOT_FOUND, "no user with this email", r.proof)
        elif r.request_type != "erasure":
            results[r.request_id] = _answer(cur, settings, r, person, audit)
    erasures = [r for r in requests if r.request_type == "erasure" and r.email in people]
    _erase(cur, erasures, people, results, audit, partitions=partitions)


def _record(cur: db.Cursor, results: dict[int, Outcome], export_days: int) -> dict[int, datetime | None]:
    """Write the outcomes: the email and any corrections go, the proof stays; an export may be
    downloaded for ``export_days``. Return each request's export expiry."""
    answers = [(rid, o.status, o.outcome, o.proof, o.export_path) for rid, o in results.items()]
    return request_store.record_answers(cur, answers, export_days)


@dataclass(frozen=True)
class Notice:
    """What a person who filed through the API is told when their request is answered."""

    email: str
    request_id: int
    request_type: str
    status: str
    export_expires_at: datetime | None


def _notify(settings: Settings, notices: list[Notice]) -> None:
    """Mail each requester the answer (after the commit: the answer is final, and only this
    process still holds the address). A mail that cannot go is logged and skipped: the person
    can still read the status with their secret. The first unreachable server ends the round."""
    for notice in notices:
        try:
            mail.notify_completion(
                settings,
                notice.email,
                request_id=notice.request_id,
                request_type=notice.request_type,
                status=notice.status,
                export_expires_at=notice.export_expires_at,
            )
        except mail.MailRefused as e:
            logger.warning("privacy request %d: answer not mailed: %s", notice.request_id, e)
        except ServiceUnavailable as e:
            logger.warning("privacy request %d and %d more: answer not mailed: %s", notice.request_id, len(notices) - 1, e)
            return


def process_batch(
    conn: psycopg2.extensions.connection,
    settings: Settings,
    batch_size: int = DEFAULT_BATCH,
    rewritten: Rewrites | None = None,
) -> Counter[str]:
    """Lock up to ``batch_size`` pending requests, process them set-based and commit; return
    counts by status. Access requests are answered before erasures, so the export reflects
    what was held; an erasure in the same batch then deletes that fresh export too (it is not
    in privacy_requests yet, where earlier exports are found). An erasure of a person under a
    legal hold waits ``on_hold`` with its email kept (housekeeping releases it). ``rewritten``
    collects what leaves old row versions behind: completed erasures and rectifications, and
    the partitions of events_raw the erasures rewrote."""
    outcomes: Counter[str] = Counter()
    answered: Counter[tuple[str, str]] = Counter()
    key = settings.gdpr_hmac_key
    with conn, conn.cursor() as cur:
        rows = request_store.lock_pending(cur, batch_size)
        if not rows:
            return outcomes
        # Taken after the requests are locked, so two processors never wait on each other in a cycle;
        # a wait past ERASURE_LOCK_WAIT_MS (a long job holding it shared) rolls the batch back to retry.
        # Shorter than the statement timeout, which is not retried and would end --watch.
        timeout_ms = settings.database.statement_timeout_ms  # 0: no statement timeout
        wait_ms = min(ERASURE_LOCK_WAIT_MS, max(timeout_ms // 2, 1)) if timeout_ms > 0 else ERASURE_LOCK_WAIT_MS
        locks.take(cur, locks.ERASURE, exclusive=True, wait_ms=wait_ms)
        audit = AuditLog()
        results: dict[int, Outcome] = {}
        requests = _accept(rows, key, audit, results)
        holds = housekeeping.active_holds(cur, sorted({r.proof for r in requests if r.request_type == "erasure"}))
        held = [r for r in requests if r.request_type == "erasure" and r.proof in holds]
        for r in held:
            audit.add(r.request_id, "held", {"hold_id": holds[r.proof], "reason": "a legal hold on the person is active"})
        requests = [r for r in requests if r not in held]
        _handle(cur, settings, requests, results, audit, partitions=None if rewritten is None else rewritten.partitions)
        audit.write(cur)
        if held:
            request_store.put_on_hold(cur, [(r.request_id, r.proof) for r in held])
        expiries = _record(cur, results, settings.access_export_days) if results else {}
        notices = [
            Notice(email, request_id, request_type, results[request_id].status, expiries.get(request_id))
            for request_id, request_type, email, channel, _corrections in rows
            if channel == "api" and email is not None and request_id in expiries
        ]
        for r in held:
            results[r.request_id] = Outcome(Status.ON_HOLD, "waiting for a legal hold", r.proof)
        for request_id, request_type, _email, _channel, _corrections in rows:
            logger.info("privacy request %d (%s): %s", request_id, request_type, results[request_id].status)
            outcomes[results[request_id].status] += 1
            answered[(request_type, results[request_id].status)] += 1
            if rewritten is not None and request_type in REWRITING and results[request_id].status == Status.COMPLETED:
                rewritten.requests[request_type] += 1
    gdpr_metrics.count_processed(answered)  # once committed: a rolled-back batch is done again
    _notify(settings, notices)
    return outcomes


# The tables an erasure (or a rectification) rewrites: vacuumed after it, so that the old row versions (which still
# hold the erased values) are removed from the table files instead of waiting for autovacuum.
REWRITING = ("erasure", "rectification")
# The MAINTAIN privilege (sql/014 grants it to the processor) exists from PostgreSQL 17 on.
MAINTAIN_SINCE = 170_000
VACUUMED = ("users_pii", "users_public", "dead_letter_events", "privacy_requests")
# An erasure's vacuum cleans the indexes of the partitions it touched itself while they come to at
# most this much: VACUUM reads every page of an index, however few rows died, which takes about a
# quarter of a second for 256 MiB here. Past it (an erasure of thousands of people, whose events lie
# on every day of a long history) the old row versions still leave the table files at once, and the
# indexes are cleaned by finish_vacuum (sql/026).
INLINE_INDEX_CLEANUP_BYTES = 256 << 20
# --watch, when idle, finishes that vacuum this many partitions at a time between looks at the requests.
FINISH_VACUUM_STEP = 4


@dataclass
class Rewrites:
    """What the processed batches rewrote: completed erasures and rectifications by type, and
    the partitions of events_raw that hold re-keyed events. Only those partitions are vacuumed:
    one person's events are on a few days, and vacuuming every day of a long history, each with
    nothing to do, cost seconds per erasure (2.8 s for 400 days, measured)."""

    requests: Counter[str] = field(default_factory=Counter)
    partitions: set[str] = field(default_factory=set)


def vacuum_after_erasure(
    conn: psycopg2.extensions.connection, partitions: Iterable[str] = (), inline_index_bytes: int | None = None
) -> None:
    """VACUUM the tables an erasure rewrote and these partitions of events_raw (outside a
    transaction, as VACUUM must be). When the partitions' indexes together are larger than
    ``inline_index_bytes`` (INLINE_INDEX_CLEANUP_BYTES by default), the partitions are vacuumed
    without index cleanup, which reads their heap pages that changed and not their whole indexes,
    and are queued in erasure_index_cleanup for ``finish_vacuum``: the old row versions leave the
    table files now either way."""
    if conn.server_version < MAINTAIN_SINCE:
        logger.warning(
            "PostgreSQL %d cannot let this role VACUUM (MAINTAIN came with 17): old row versions wait for autovacuum",
            conn.server_version // 10_000,
        )
        return
    limit = INLINE_INDEX_CLEANUP_BYTES if inline_index_bytes is None else inline_index_bytes
    parts = sorted(partitions)
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            deferred = bool(parts) and _indexes_size(cur, parts) > limit
            tables = [*VACUUMED, *([] if deferred else parts)]
            cur.execute(sql.SQL("VACUUM {}").format(_names(tables)))
            if deferred:
                # Queued first: a processor stopped between the two leaves the queue longer, never shorter.
                cur.execute(
                    "INSERT INTO erasure_index_cleanup (partition_name) SELECT unnest(%s::text[])"
                    " ON CONFLICT (partition_name) DO UPDATE SET queued_at = excluded.queued_at",
                    (parts,),
                )
                cur.execute(sql.SQL("VACUUM (INDEX_CLEANUP OFF) {}").format(_names(parts)))
    finally:
        conn.autocommit = autocommit
    logger.info(
        "vacuumed %s and %d partitions of events_raw%s: no old row version keeps an erased or corrected value",
        ", ".join(VACUUMED),
        len(parts),
        " (their index cleanup is queued for --finish-vacuum)" if deferred else "",
    )


def _names(tables: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(*t.split(".")) for t in tables)


def _indexes_size(cur: db.Cursor, tables: list[str]) -> int:
    cur.execute("SELECT coalesce(sum(pg_indexes_size(to_regclass(t))), 0) FROM unnest(%s::text[]) AS t", (tables,))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def finish_vacuum(conn: psycopg2.extensions.connection, stop: threading.Event | None = None, limit: int | None = None) -> int:
    """VACUUM, index cleanup included, the partitions of events_raw an erasure queued in
    erasure_index_cleanup, one at a time, and take each off the queue; return how many left it.
    With ``stop``, return early once it is set, and with ``limit`` after that many (the rest stay
    queued). A partition that retention dropped meanwhile just leaves the queue."""
    done = 0
    handled = 0
    autocommit = conn.autocommit
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT partition_name, queued_at, to_regclass(partition_name) IS NOT NULL FROM erasure_index_cleanup"
                " ORDER BY queued_at, partition_name LIMIT %s",
                (limit,),
            )
            for name, queued_at, exists in cur.fetchall():
                if stop is not None and stop.is_set():
                    break
                handled += 1
                if exists:
                    try:
                        cur.execute(sql.SQL("VACUUM {}").format(_names([name])))
                        done += 1
                    except psycopg2.errors.UndefinedTable:
                        pass  # dropped by retention since it was read: nothing left to clean
                # An erasure that queued it again meanwhile keeps it queued.
                cur.execute("DELETE FROM erasure_index_cleanup WHERE partition_name = %s AND queued_at = %s", (name, queued_at))
    finally:
        conn.autocommit = autocommit
    if done:
        logger.info("finished the vacuum of %d partitions of events_raw, index cleanup included", done)
    return handled


def process_pending(settings: Settings, batch_size: int = DEFAULT_BATCH) -> Counter[str]:
    """Tidy (holds ended, codes expired, exports expired), then process every pending request;
    return counts by resulting status. Vacuums after any erasure or rectification."""
    total: Counter[str] = Counter()
    rewritten = Rewrites()
    with db.connection(settings.database, application_name="gdpr_processor", role=db.GDPR_ROLE) as conn:
        housekeeping.tidy(conn, settings.gdpr_hmac_key)
        # A deadlock with a DPO's action, a serialization failure or the erasure lock not had in
        # time: the batch was rolled back whole, so it is simply done again (each batch has its own
        # retries); a lost connection is not, as the batch's connection is gone.
        policy = retry.RetryPolicy(
            transient=lambda e: db.is_transient(e) and not conn.closed, backoff=BATCH_BACKOFF, max_retries=BATCH_RETRIES
        )

        def log(r: retry.Retry) -> None:
            logger.warning("privacy batch rolled back (%s); doing it again in %.1f s", db.describe_error(r.error), r.delay_s)

        while True:
            try:
                outcomes = retry.call(lambda: process_batch(conn, settings, batch_size, rewritten), policy, on_retry=log)
            except retry.GaveUp as e:
                raise e.error from None
            if not outcomes:
                break
            total.update(outcomes)
        if rewritten.requests:
            vacuum_after_erasure(conn, rewritten.partitions)
    return total


def process_privacy_requests(settings: Settings | None = None, batch_size: int = DEFAULT_BATCH) -> Counter[str]:
    """Process every pending request and return the counts by resulting status: the design's own
    entry point, callable with no argument (settings then come from the environment and the
    stack file, as for the command). Raises ConfigError for a missing or public HMAC key off the
    embedded stack, before any request is touched."""
    settings = settings if settings is not None else load_settings()
    settings.gdpr_hmac_key  # noqa: B018 - refuse a missing or public key before touching any request
    return process_pending(settings, batch_size)


def _refresh_deadlines(listener: psycopg2.extensions.connection) -> None:
    """The deadline gauges (gdpr.metrics), read on the listening connection; a transient failure
    only leaves them as they were until the next refresh."""
    try:
        with listener.cursor() as cur:
            gdpr_metrics.refresh_deadlines(cur)
    except psycopg2.Error as e:
        if not db.is_transient(e):
            raise
        logger.warning("privacy request deadlines not counted this time: %s", db.describe_error(e))


def _finish_vacuum_step(conn: psycopg2.extensions.connection, stop: threading.Event) -> bool:
    """A few partitions' deferred index cleanup (finish_vacuum); whether more may be queued."""
    if stop.is_set():
        return False
    try:
        return finish_vacuum(conn, stop, FINISH_VACUUM_STEP) == FINISH_VACUUM_STEP
    except psycopg2.Error as e:
        if not db.is_transient(e):
            raise
        logger.warning("vacuum not finished this round, trying again: %s", db.describe_error(e))
        return False


def watch(
    settings: Settings,
    stop: threading.Event,
    batch_size: int = DEFAULT_BATCH,
    sweep_s: float = SWEEP_INTERVAL_S,
    deadlines_every_s: float | None = None,
) -> Counter[str]:
    """Process requests as they arrive until ``stop`` is set; with ``deadlines_every_s``, also
    count the open requests' deadlines for the metrics that often."""
    total: Counter[str] = Counter()
    next_deadlines = time.monotonic()
    with db.connection(settings.database, application_name="gdpr_watch", role=db.GDPR_ROLE) as listener:
        listener.autocommit = True
        with listener.cursor() as cur:
            cur.execute("LISTEN privacy_requests")
        logger.info("watching privacy_requests (sweep every %.0f s)", sweep_s)
        while not stop.is_set():
            try:
                total.update(process_pending(settings, batch_size))
            except (ServiceUnavailable, psycopg2.Error) as e:
                if isinstance(e, psycopg2.Error) and not db.is_transient(e):
                    raise
                # Nothing was lost: what was rolled back is pending again, and the sweep retries.
                logger.warning("privacy requests not processed this round, trying again: %s", db.describe_error(e))
            # Idle: a few of the partitions a large erasure left for index cleanup, then back to the
            # requests; while some remain the loop comes round again at once.
            more = _finish_vacuum_step(listener, stop)
            # Wake on a notification, on the sweep timer, or (within 1 s) on a stop request.
            deadline = time.monotonic() + (0.0 if more else sweep_s)
            while not stop.is_set() and time.monotonic() < deadline:
                if deadlines_every_s is not None and time.monotonic() >= next_deadlines:
                    _refresh_deadlines(listener)
                    next_deadlines = time.monotonic() + deadlines_every_s
                ready, _w, _x = select.select([listener], [], [], 1.0)
                if ready:
                    listener.poll()
                    if listener.notifies:
                        listener.notifies.clear()
                        break
    return total


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gdpr.process_privacy_requests",
        description="Process pending privacy_requests: erasure (default) forgets the person, access writes a JSON "
        "export to REPORTS_DIR/access/, rectification corrects users_pii, restriction and objection stop analytics "
        "on the person. Each request ends completed, not_found or rejected (an erasure under a legal hold waits "
        "on_hold), and every step is recorded in privacy_audit_log. Without --watch: process what is pending and exit.",
    )
    parser.add_argument("--watch", action="store_true", help="keep running; process each new request within about a second")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"requests per transaction (default: {DEFAULT_BATCH})"
    )
    parser.add_argument(
        "--finish-vacuum",
        action="store_true",
        help="only finish the vacuum that large erasures left for later: clean the indexes of the partitions of "
        "events_raw they queued (a nightly job of the scheduler), then exit",
    )
    metrics.add_metrics_argument(parser, "gdpr.process_privacy_requests")
    return parser


def _summary(outcomes: Counter[str]) -> str:
    if not outcomes:
        return "privacy requests: none pending"
    detail = ", ".join(f"{status} {n}" for status, n in sorted(outcomes.items()))
    return f"privacy requests: {sum(outcomes.values())} processed ({detail})"


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.metrics_port is not None and not args.watch:
        parser.error("--metrics-port applies to --watch (a single run ends before anything could scrape it)")
    if args.finish_vacuum and args.watch:
        parser.error("--finish-vacuum is a run of its own (--watch finishes the vacuum by itself when idle)")

    def execute(settings: Settings) -> int:
        if args.finish_vacuum:
            with db.connection(settings.database, application_name="gdpr_processor", role=db.GDPR_ROLE) as conn:
                done = finish_vacuum(conn, cli.install_stop_handlers())
            print(f"vacuum finished for {done} partitions of events_raw")
            return 0
        if args.watch:
            settings.gdpr_hmac_key  # noqa: B018 - refuse a missing or public key before touching any request
            exporter = metrics.serve(settings, "gdpr.process_privacy_requests", args.metrics_port)
            deadlines_every_s = gdpr_metrics.DEADLINES_EVERY_S if exporter is not None else None
            outcomes = watch(settings, cli.install_stop_handlers(), args.batch_size, deadlines_every_s=deadlines_every_s)
        else:
            outcomes = process_privacy_requests(settings, args.batch_size)
        print(_summary(outcomes))
        return 0

    cli.run(execute)


if __name__ == "__main__":
    main()
