"""Erasure (Art. 17): the processor's way to forget a person (gdpr.process_privacy_requests
dispatches the requests and records their outcomes).

Erasure makes the platform forget the person: email, name and address are set to NULL in
``users_pii``; their public profile and events are moved to a fresh random user id with no
``users_pii`` row (pseudonymised data is personal data, Recital 26), each event with a fresh
random event id and no Kafka partition or offset, so the aggregates stay exactly as they were
(the analyses' per-person-day summaries move to the same new id, analytics.summaries; their RFM and
lifetime-value scores are deleted, analytics.scores)
and no stored id leads to the person's Kafka messages (their content still matches the rows
until the topic's retention deletes them: docs/gdpr.md, What erasure does). Before the values are forgotten they
are looked for, in their obvious spellings, in everything stored about the person: they are
removed from the metadata of the person's events, dead letters that mention them are scrubbed,
and the erasure checks that none is left (a count, never a value, goes to the audit trail).
Access exports of the person, earlier or from the same batch, are deleted. After a run that
erased or corrected anybody, the rewritten tables are vacuumed (gdpr.vacuum).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, NamedTuple

import msgspec
from psycopg2 import sql
from psycopg2.extras import execute_values

from analytics import scores, summaries
from core import consent, db
from core.pii import (
    SQL_WORD_SEPARATORS,
    KnownValues,
    known_values,
    mentions_known_values,
    new_pseudonymous_user_id,
    scrub_known_values,
    words_of,
)
from gdpr import person_days
from gdpr import requests as request_store
from gdpr.audit import AuditLog
from gdpr.exports import remove_export

# The processor's log lines keep its name, whichever of its modules writes them.
logger = logging.getLogger("gdpr.process_privacy_requests")

ERASED_PAYLOAD = "[erased: this payload mentioned a person who asked to be forgotten]"
_JOIN_SETTINGS = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")
# Metadata is read and written back exactly: numbers keep their digits (jsonb keeps 1.10 as is).
_METADATA_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_METADATA_ENCODER = msgspec.json.Encoder(decimal_format="number")


@dataclass(frozen=True)
class Person:
    user_id: str  # canonical UUID text
    email: str | None  # as stored
    full_name: str | None
    address: str | None

    def known_values(self) -> KnownValues:
        return known_values(self.email, self.full_name, self.address)


@dataclass(frozen=True)
class Erased:
    """What an erasure did for one person: counts only, for the audit trail."""

    events_rekeyed: int = 0
    values_scrubbed: int = 0  # the person's values removed from their events' metadata
    residual_values: int = 0  # the person's values still found afterwards: must be 0


@contextmanager
def _walking_the_user_index(cur: db.Cursor, settings: tuple[str, ...] = _JOIN_SETTINGS) -> Iterator[None]:
    """The planner is told to walk the user_id index for every person: left to itself it may
    choose a scan of all of events_raw per batch (docs/decisions.md)."""
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
    # Their per-person-day summaries follow their events to the same new ids: every analysis
    # recomputed after the erasure counts them as before, under a random id.
    summaries.rekey(cur, olds, news)
    # No per-person score follows them: their RFM and lifetime-value rows go (the next scoring
    # scores the new random id from the re-keyed summaries, as anybody's).
    scores.remove_people(cur, olds)
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
    joined to the new ids by hash (docs/decisions.md compares the other plans).
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
    names_id = user_id_pattern(user_ids)
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


def user_id_pattern(user_ids: list[str]) -> str | None:
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


def already_erased(cur: db.Cursor, proofs: list[str]) -> set[str]:
    """Which of these email proofs belong to a person an earlier request erased (their email is
    gone from users_pii, but the completed erasure kept the proof)."""
    if not proofs:
        return set()
    return request_store.erased_proofs(cur, proofs)
