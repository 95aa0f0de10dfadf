"""The hash chain: canonical form of an entry, its hash, and the walk that checks a whole log.

hash(entry) = SHA-256 of the canonical JSON of every content column plus `prev_hash`:
keys sorted, separators "," and ":", non-ASCII kept as UTF-8, times in UTC ISO 8601 with
microseconds ("2025-01-31T12:00:00.000000+00:00"). The first entry's `prev_hash` is GENESIS.
`arguments` and `details` are stored as their canonical JSON text (not jsonb), so the bytes
stored are the bytes hashed and verify never re-encodes them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import c_encode_basestring, py_encode_basestring
from typing import Any

from audit.choices import Finding

GENESIS = "0" * 64

# Every column of AuditEntry that the hash covers, in the order verify() reads them.
HASHED_FIELDS = (
    "sequence",
    "time",
    "event",
    "actor",
    "actor_kind",
    "run_id",
    "tool",
    "intent",
    "decision",
    "outcome",
    "reason",
    "grant_id",
    "target",
    "arguments",
    "result_summary",
    "duration_ms",
    "error",
    "details",
    "prev_hash",
)

JSON_FIELDS = ("arguments", "details")
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_string = c_encode_basestring or py_encode_basestring  # what _encode uses for every str
# The canonical JSON object with its keys in sorted order; each %s is one already-encoded value.
_TEMPLATE = "{" + ",".join(f'"{name}":%s' for name in sorted(HASHED_FIELDS)) + "}"


def canonical_time(value: datetime) -> str:
    """UTC ISO 8601 with microseconds, always the same length. A naive value is taken as UTC (that is
    how Django stores times in SQLite)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def canonical_json(value: Any) -> str:
    """Canonical JSON text: keys sorted, no spaces, UTF-8 characters kept, no NaN/Infinity."""
    return _encode(value)


def _number(value: int | None) -> str:
    return "null" if value is None else str(value)


def canonical_row(row: tuple) -> str:
    """The canonical JSON of an entry given as a row in HASHED_FIELDS order, with `time` already
    canonical text and `arguments`/`details` already canonical JSON text (as stored).

    Equals canonical_json() of the entry as a dict (tests/audit/test_chain.py holds it to that); it is
    written out by hand because it is 3x faster, which is what lets verify do 100k entries/s.
    """
    (
        sequence,
        time,
        event,
        actor,
        actor_kind,
        run_id,
        tool,
        intent,
        decision,
        outcome,
        reason,
        grant_id,
        target,
        arguments,
        result_summary,
        duration_ms,
        error,
        details,
        prev_hash,
    ) = row[:19]
    s = _string
    return _TEMPLATE % (  # sorted key order: actor, actor_kind, arguments, decision, details, ...
        s(actor),
        s(actor_kind),
        "null" if arguments is None else arguments,
        s(decision),
        "null" if details is None else details,
        _number(duration_ms),
        s(error),
        s(event),
        _number(grant_id),
        s(intent),
        s(outcome),
        s(prev_hash),
        s(reason),
        s(result_summary),
        _number(run_id),
        _number(sequence),
        s(target),
        s(time),
        s(tool),
    )


def entry_hash(content: dict[str, Any]) -> str:
    """SHA-256 (hex) of an entry's content (every HASHED_FIELDS key, `prev_hash` included), given as
    Python values: `time` a datetime, `arguments`/`details` JSON-able values."""
    values = dict(content)
    if isinstance(values["time"], datetime):
        values["time"] = canonical_time(values["time"])
    for name in JSON_FIELDS:
        values[name] = None if values[name] is None else canonical_json(values[name])
    return hashlib.sha256(canonical_row(tuple(values[name] for name in HASHED_FIELDS)).encode()).hexdigest()


@dataclass(frozen=True)
class Problem:
    """What is wrong (`kind`, a Finding), at which entry (None: the log as a whole)."""

    sequence: int | None
    message: str
    kind: str = Finding.BROKEN_CHAIN

    def __str__(self) -> str:
        return f"entry #{self.sequence}: {self.message}" if self.sequence is not None else self.message


@dataclass
class Walk:
    """What walking the chain found: how far it got and the first problem, if any."""

    entries: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS
    problem: Problem | None = None


def walk(rows: Iterable[tuple], *, watch: Iterable[int] = ()) -> tuple[Walk, dict[int, str]]:
    """Check rows of (HASHED_FIELDS..., hash) as stored (`time` as canonical text, JSON columns as
    their stored text), ordered by sequence: genesis, gaps, links and hashes.

    Stops at the first problem. Returns the walk and the stored hash of every sequence in `watch`
    that was passed on the way (for checking checkpoints and the chain head).
    """
    result = Walk()
    watched = set(watch)
    seen: dict[int, str] = {}
    expected_sequence, expected_prev = 1, GENESIS
    sha256 = hashlib.sha256
    canonical = canonical_row
    for row in rows:
        sequence, stored_hash, prev_hash = row[0], row[-1], row[-2]
        if sequence != expected_sequence:
            if expected_sequence == 1:
                message = f"the log does not start at the genesis entry #1 (entries #1-#{sequence - 1} are missing)"
            else:
                missing = f"#{expected_sequence}" + (f"-#{sequence - 1}" if sequence - 1 > expected_sequence else "")
                message = f"sequence gap: entry {missing} is missing before it"
            result.problem = Problem(sequence, message)
            return result, seen
        if prev_hash != expected_prev:
            what = "the genesis hash" if sequence == 1 else f"the hash of entry #{sequence - 1}"
            result.problem = Problem(sequence, f"broken link: its previous hash does not match {what}")
            return result, seen
        if sha256(canonical(row).encode()).hexdigest() != stored_hash:
            result.problem = Problem(sequence, "hash mismatch: the entry's content was changed after it was written")
            return result, seen
        if sequence in watched:
            seen[sequence] = stored_hash
        result.entries += 1
        result.last_sequence, result.last_hash = sequence, stored_hash
        expected_sequence, expected_prev = sequence + 1, stored_hash
    return result, seen
