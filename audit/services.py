"""The audit log's verbs: `record()` an event, `take_checkpoint()`, `verify_log()`, `export_lines()`.

`record()` is the one way rows get into the log. It joins the caller's transaction (a savepoint
inside it), so an entry commits or rolls back with the state it records. Appends are serialised on
the chain head (`audit_chainhead`, one row holding the newest sequence and hash):

- PostgreSQL: one statement locks the head row with SELECT ... FOR UPDATE, takes the time, hashes
  the entry (sha256() over the canonical JSON audit.chain builds), inserts it and moves the head.
- SQLite: an UPDATE of the head takes the database's write lock before the head is read (Vigilus
  transactions already begin IMMEDIATE; this also covers one that began deferred), then the entry
  is hashed in Python, inserted, and the head moved.

The lock is held until the transaction ends, so two writers never chain onto the same entry.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import logging
import time as clock
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache, partial
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.utils import timezone

from audit import witness
from audit.chain import (
    GENESIS,
    HASHED_FIELDS,
    JSON_FIELDS,
    Problem,
    Walk,
    canonical_json,
    canonical_row,
    canonical_time,
    walk,
)
from audit.choices import ActorKind, Finding
from audit.events import AuditEvent
from audit.models import AuditCheckpoint, AuditEntry, ChainHead
from vigilus.logs import RedactedText
from vigilus.prepared import hot_cursor
from vigilus.redaction import NotPlainJSON, redact_json

logger = logging.getLogger("vigilus.audit")

VERIFY_CHUNK = 5000
EXPORT_FIELDS = (*HASHED_FIELDS, "hash")
# record() keyword -> column. Everything else goes into `details`.
_TEXT_COLUMNS = ("tool", "intent", "decision", "outcome", "reason", "target", "result_summary", "error")
_ALIASES = {"run": "run_id", "grant": "grant_id", "duration": "duration_ms"}


class AuditWriteError(RuntimeError):
    """The entry could not be written; whatever it was to record must not go ahead."""


# --- record ----------------------------------------------------------------------------------------


_MAX_LENGTHS = {f.name: f.max_length for f in AuditEntry._meta.concrete_fields}


def _clean_text(value: Any, column: str) -> str:
    """A redacted string that fits the column (NUL characters cannot be stored by PostgreSQL)."""
    text = redact_json(str(value)) if value is not None else ""
    max_length = _MAX_LENGTHS[column]
    return text[:max_length] if max_length else text


def _clean_json(value: Any) -> Any:
    """Redacted, and exactly what the database will give back (JSON types only, no NULs). Anything but plain JSON
    data (dates, decimals, int keys) is made plain by a trip through JSON text first; NaN is refused there."""
    try:
        return redact_json(value)
    except NotPlainJSON:
        return redact_json(json.loads(json.dumps(value, default=str, ensure_ascii=False, allow_nan=False)))


def _reference(value: Any) -> int | None:
    """An id from a model instance, an int or a digit string; None if it is none of those."""
    value = getattr(value, "pk", value)
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _columns(event: str, actor: Any, actor_kind: str | None, details: dict[str, Any]) -> dict[str, Any]:
    """Map record()'s keywords onto columns; the rest (redacted) becomes `details`."""
    details = {_ALIASES.get(k, k): v for k, v in details.items()}
    actor_name = str(getattr(actor, "username", None) or getattr(actor, "name", None) or actor or "system")
    kind = actor_kind or (ActorKind.SYSTEM if actor_name == "system" else ActorKind.USER)
    columns: dict[str, Any] = {
        "event": _clean_text(event, "event"),
        "actor": _clean_text(actor_name, "actor"),
        "actor_kind": _clean_text(kind, "actor_kind"),
    }
    for name in ("run_id", "grant_id"):
        raw = details.pop(name, None)
        columns[name] = _reference(raw)
        if columns[name] is None and raw not in (None, ""):
            details[name] = str(getattr(raw, "pk", raw))  # not an id we can link: keep it as written
    for name in _TEXT_COLUMNS:
        columns[name] = _clean_text(details.pop(name, None), name)
    columns["arguments"] = _clean_json(details.pop("arguments")) if "arguments" in details else None
    duration = details.pop("duration_ms", None)
    numeric = isinstance(duration, int | float) and not isinstance(duration, bool)
    columns["duration_ms"] = round(duration) if numeric else None
    columns["details"] = _clean_json(details)
    return columns


_FIELDS = list(AuditEntry._meta.local_concrete_fields)
_COLUMNS = [f.column for f in _FIELDS]
_CHAINED = ("sequence", "time", "prev_hash", "hash")  # assigned under the head lock
# Column names come from the model, values are always parameters: nothing here is user input.
_SQLITE_INSERT = "INSERT INTO audit_auditentry ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(_COLUMNS), ", ".join(["%s"] * len(_COLUMNS))
)
_SQLITE_LOCK_HEAD = "UPDATE audit_chainhead SET sequence = sequence WHERE id = 1 RETURNING sequence, hash"
_SQLITE_MOVE_HEAD = "UPDATE audit_chainhead SET sequence = %s, hash = %s WHERE id = 1"
# PostgreSQL: one statement locks the head, takes the time, builds the canonical JSON around the
# previous hash, sequence and time (the rest comes as text made by audit.chain), hashes it with
# sha256(), inserts the entry and moves the head. One round trip, and the lock is held from the
# moment the sequence is known until the transaction ends.
_PG_APPEND = """
WITH prev AS (
    SELECT sequence, hash FROM audit_chainhead WHERE id = 1 FOR UPDATE
), made AS (
    SELECT prev.sequence + 1 AS sequence, prev.hash AS prev_hash, now_utc.t AS time,
           encode(sha256(convert_to(
               %(a)s || '"' || prev.hash || '"' || %(b)s || (prev.sequence + 1)::text || %(c)s
               || '"' || to_char(now_utc.t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '"'
               || %(d)s, 'UTF8')), 'hex') AS hash
    FROM prev, LATERAL (SELECT clock_timestamp() AS t) now_utc
), entry AS (
    INSERT INTO audit_auditentry ({columns})
    SELECT {values} FROM made
    RETURNING sequence, time, prev_hash, hash
), head AS (
    UPDATE audit_chainhead SET sequence = entry.sequence, hash = entry.hash FROM entry WHERE audit_chainhead.id = 1
)
SELECT sequence, time, prev_hash, hash FROM entry
""".format(  # noqa: S608
    columns=", ".join(_COLUMNS),
    values=", ".join(f"made.{c}" if c in _CHAINED else f"%({c})s" for c in _COLUMNS),
)
# Stand-ins for what only the database knows, cut out of the canonical JSON made in Python.
_SEQUENCE, _TIME, _PREV = "\x00sequence\x00", "\x00time\x00", "\x00prev\x00"


def _ensure_head(using: str) -> None:
    """Create the chain head row if it is missing (a fresh or flushed database), from the log's tail."""
    tail = AuditEntry.objects.using(using).order_by("-sequence").values_list("sequence", "hash").first()
    sequence, digest = tail or (0, GENESIS)
    ChainHead.objects.using(using).get_or_create(pk=1, defaults={"sequence": sequence, "hash": digest})


def _entry(values: dict[str, Any], connection: BaseDatabaseWrapper) -> AuditEntry:
    """The appended entry as a model instance (built positionally: cheaper than keywords)."""
    entry = AuditEntry(*(values[f.attname] for f in _FIELDS))
    entry._state.adding, entry._state.db = False, connection.alias
    return entry


class _NoChainHead(Exception):
    """The chain head row is missing (a fresh or flushed database): make it, then append again."""


def _append_sqlite(connection: BaseDatabaseWrapper, cursor: Any, columns: dict[str, Any]) -> AuditEntry:
    """SQLite, in the transaction the caller began: an UPDATE of the head takes the write lock (even in a
    transaction that began deferred) and reads it back; then the entry is hashed here, inserted, and the head
    moved."""
    cursor.execute(_SQLITE_LOCK_HEAD)
    head = cursor.fetchone()
    if head is None:
        raise _NoChainHead
    sequence, prev_hash, now = head[0] + 1, head[1], timezone.now()
    texts = {name: None if columns[name] is None else canonical_json(columns[name]) for name in JSON_FIELDS}
    chained = {**columns, **texts, "sequence": sequence, "time": canonical_time(now), "prev_hash": prev_hash}
    digest = hashlib.sha256(canonical_row(tuple(chained[name] for name in HASHED_FIELDS)).encode()).hexdigest()
    stored = {**chained, "time": connection.ops.adapt_datetimefield_value(now), "hash": digest}
    cursor.execute(_SQLITE_INSERT, [stored[name] for name in _COLUMNS])
    cursor.execute(_SQLITE_MOVE_HEAD, (sequence, digest))
    return _entry({**columns, "sequence": sequence, "time": now, "prev_hash": prev_hash, "hash": digest}, connection)


def _append_postgresql(connection: BaseDatabaseWrapper, columns: dict[str, Any]) -> AuditEntry:
    """PostgreSQL: _PG_APPEND does the whole append in one statement under SELECT ... FOR UPDATE."""
    entry = AuditEntry(**columns, sequence=0, prev_hash="", hash="")
    row = tuple(
        {"sequence": _SEQUENCE, "prev_hash": _PREV, "time": _TIME}.get(name)
        or (canonical_json(value) if name in JSON_FIELDS and value is not None else value)
        for name in HASHED_FIELDS
        for value in [getattr(entry, name)]
    )
    text = canonical_row(row)
    a, rest = text.split(canonical_json(_PREV))
    b, rest = rest.split(_SEQUENCE)
    c, d = rest.split(canonical_json(_TIME))
    params = {f.column: f.get_db_prep_save(getattr(entry, f.attname), connection) for f in _FIELDS}
    params.update(a=a, b=b, c=c, d=d)
    with connection.cursor() as cursor:
        cursor.execute(_PG_APPEND, params)
        made = cursor.fetchone()
    if made is None:
        raise _NoChainHead
    entry.sequence, entry.time, entry.prev_hash, entry.hash = made
    entry._state.adding, entry._state.db = False, connection.alias
    return entry


def _append(using: str, columns: dict[str, Any], durable: bool = False) -> AuditEntry:
    """Append the next entry after the locked chain head: in the caller's transaction (on SQLite a savepoint
    in it), or alone in a transaction of its own; `durable` (SQLite, alone): that commit is synced to disk."""
    connection = connections[using]
    try:
        if connection.vendor == "postgresql":
            # One statement: atomic on its own in autocommit. Inside the caller's transaction no savepoint
            # (two more round trips): a failed append aborts that whole transaction, so nothing the caller
            # did commits without its entry, which is what writing them together is for.
            return _append_postgresql(connection, columns)
        if connection.in_atomic_block:
            with transaction.atomic(using=using), hot_cursor(connection) as cursor:
                return _append_sqlite(connection, cursor, columns)
        # Alone (a tool call's entries): BEGIN IMMEDIATE ... COMMIT without transaction.atomic()'s bookkeeping;
        # the write lock is taken at BEGIN.
        with hot_cursor(connection) as cursor:
            if durable:  # changeable only between transactions: FULL for this one, then what it was
                cursor.execute("PRAGMA synchronous")
                (level,) = cursor.fetchone()
                cursor.execute("PRAGMA synchronous=FULL")
            try:
                cursor.execute("BEGIN IMMEDIATE")
                entry = _append_sqlite(connection, cursor, columns)
                cursor.execute("COMMIT")
            except BaseException:
                connection.connection.rollback()  # no error if SQLite already ended the transaction
                raise
            finally:
                if durable:
                    cursor.execute(f"PRAGMA synchronous={int(level)}")
            return entry
    except _NoChainHead:
        _ensure_head(using)
        return _append(using, columns, durable)


def log_line(sequence: int, columns: dict[str, Any]) -> str:
    """The entry as one JSON line for the log. Made of redacted columns only, with whatever sits under a
    secret-looking key masked, so the log's filter need not scan it again."""
    logged = {"sequence": sequence, **{k: v for k, v in columns.items() if v not in ("", None, {})}}
    return json.dumps(logged, ensure_ascii=False, sort_keys=True)


def record(
    event: str, *, actor: Any = "system", actor_kind: str | None = None, durable: bool = False, **details: Any
) -> AuditEntry:
    """Append one redacted, hash-chained entry in the caller's transaction, and return it.

    `durable`: the entry is on disk when record() returns, even on SQLite (whose commits are otherwise synced
    at its WAL checkpoints, so a power cut may lose the last few; a crash of the process loses none), for an
    entry that must outlive a power cut: the decision before a call that can change something. It applies to
    an entry written alone; in the caller's transaction the caller's commit decides. On PostgreSQL every commit
    is synced (settings.DATABASES asks for synchronous_commit=on).

    Known keywords become columns (run, tool, intent, decision, outcome, reason, grant, target,
    arguments, result_summary, duration_ms, error); the rest is kept in `details`. Raises
    AuditWriteError when the entry cannot be written — the caller must then not go ahead.
    """
    try:
        columns = _columns(event, actor, actor_kind, details)
    except (TypeError, ValueError) as exc:
        raise AuditWriteError(f"cannot serialise the audit entry for {event}: {exc}") from None
    try:
        entry = _append(DEFAULT_DB_ALIAS, columns, durable)
    except (DatabaseError, ValueError) as exc:
        raise AuditWriteError(f"the audit entry for {event} could not be written: {exc}") from exc
    logger.info(RedactedText(log_line(entry.sequence, columns)))  # made of redacted columns: not scanned again
    every = settings.AUDIT_CHECKPOINT_EVERY
    if every > 0 and entry.sequence % every == 0:  # sequences have no gaps: each multiple of N is crossed once
        transaction.on_commit(partial(_request_checkpoint, entry.sequence), robust=True)
    return entry


def _request_checkpoint(sequence: int) -> None:
    """Ask the worker for a checkpoint once entry `sequence` has committed (every AUDIT_CHECKPOINT_EVERY entries).

    The checkpoint (a signature, a row, a synced line in the witness file, outside witnesses over the network) is
    taken by the worker, not here: record() runs on every tool call's path, which pays one message to the broker
    per N entries. If the broker cannot take it, the hourly checkpoint covers these entries."""
    from kombu.exceptions import OperationalError

    from audit import tasks

    try:
        tasks.take_checkpoint.apply_async(retry=False)
    except (OperationalError, OSError) as exc:
        logger.warning("could not ask the worker for an audit checkpoint at #%s: %s", sequence, exc)


def install_triggers(*, actor: Any) -> list[str]:
    """Re-create the append-only triggers; the names that were missing are returned, and audited."""
    from audit import triggers

    connection = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic():
        missing = triggers.missing(connection)
        triggers.install(connection)
        if missing:
            record(AuditEvent.TRIGGERS_INSTALLED, actor=actor, missing=missing)
    return missing


# --- checkpoints -----------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _instance_keys(pem: str) -> tuple[Ed25519PrivateKey, Ed25519PublicKey, str]:
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("the instance key (JIT signing key) is not an Ed25519 key")
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, public, hashlib.sha256(raw).hexdigest()[:16]


def instance_keys() -> tuple[Ed25519PrivateKey, Ed25519PublicKey, str]:
    """The instance's Ed25519 key pair (settings.JIT_SIGNING_KEY_PEM) and the public key's id."""
    return _instance_keys(settings.JIT_SIGNING_KEY_PEM)


def signing_payload(sequence: int, digest: str, created_at: datetime | str) -> bytes:
    """The exact bytes a checkpoint's signature covers (`created_at` a datetime, or already its canonical text)."""
    when = created_at if isinstance(created_at, str) else canonical_time(created_at)
    return f"vigilus-audit-checkpoint/v1\n{sequence}\n{digest}\n{when}".encode()


def take_checkpoint() -> AuditCheckpoint | None:
    """Sign the newest entry's sequence and hash with the instance key, store it, append it to the witness file
    and send it to the outside witnesses (audit/witness.py).

    Returns the new checkpoint, the latest one when the log has not grown since it was witnessed, or None when
    the log is empty. The checkpoint commits before any witness sees it (so no witness ever holds one the
    database rolled back): not to be called inside a transaction. Raises WitnessError when the witness file
    cannot be written; an outside witness that fails is only logged.
    """
    with transaction.atomic(durable=True):
        tail = AuditEntry.objects.order_by("-sequence").values_list("sequence", "hash").first()
        if tail is None:
            return None
        latest = AuditCheckpoint.objects.order_by("-sequence", "-id").first()
        # One taken before witnesses existed is taken again, witnessed this time.
        if latest is not None and latest.witnessed and (latest.sequence, latest.hash) == tail:
            return latest
        private, _public, key_id = instance_keys()
        created_at = timezone.now()
        signature = private.sign(signing_payload(tail[0], tail[1], created_at))
        checkpoint = AuditCheckpoint(
            sequence=tail[0],
            hash=tail[1],
            created_at=created_at,
            key_id=key_id,
            signature=base64.b64encode(signature).decode("ascii"),
            witnessed=True,
        )
        checkpoint.save()
    statement = witness.Statement.of(checkpoint)
    witness.append(settings.AUDIT_WITNESS_FILE, statement)
    logger.info("audit checkpoint at #%s (%s)", checkpoint.sequence, checkpoint.hash)
    witness.send(statement, witness.split_urls(settings.AUDIT_WITNESS_URLS))
    return checkpoint


class _Signatures:
    """Checks checkpoint signatures against the instance key, each distinct checkpoint once (the database and the
    witness file hold the same ones, and each check costs a fraction of a millisecond)."""

    def __init__(self) -> None:
        _private, self.public, self.key_id = instance_keys()
        self.valid: dict[tuple, bool] = {}

    def problem(self, statement: witness.Statement, what: str) -> str:
        """Why `what` (the checkpoint as a statement) is not signed by the instance key ('' if it is)."""
        if statement.key_id != self.key_id:
            return f"{what} was signed by another key ({statement.key_id}, this instance: {self.key_id})"
        if statement.key not in self.valid:
            payload = signing_payload(statement.sequence, statement.hash, statement.created_at)
            try:
                self.public.verify(base64.b64decode(statement.signature, validate=True), payload)
                self.valid[statement.key] = True
            except (InvalidSignature, ValueError):
                self.valid[statement.key] = False
        return "" if self.valid[statement.key] else f"{what} has an invalid signature (it was forged or edited)"


def checkpoint_signature_problem(checkpoint: AuditCheckpoint) -> str:
    """Why the checkpoint's signature is not the instance key's over its fields ('' if it is)."""
    return _Signatures().problem(witness.Statement.of(checkpoint), f"checkpoint {checkpoint.pk}")


# --- verify ----------------------------------------------------------------------------------------


def _problem_dict(problem: Problem) -> dict[str, Any]:
    return {"kind": problem.kind, "sequence": problem.sequence, "message": problem.message, "text": str(problem)}


@dataclass
class WitnessReport:
    """What checking the log against the witness file (settings.AUDIT_WITNESS_FILE) found."""

    file: str
    present: bool = False
    checkpoints: int = 0  # checkpoints the file holds
    latest: int | None = None  # the newest sequence one of them covers
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": [_problem_dict(problem) for problem in self.problems]}


@dataclass
class VerifyReport:
    """The outcome of `verify_log()`: every problem found (`problem` is the first), notes, and the witness check.
    `ok` is False exactly when a problem was found."""

    entries: int = 0
    last_sequence: int = 0
    last_hash: str = GENESIS
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    witness: WitnessReport | None = None

    @property
    def problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["problem"] = _problem_dict(self.problem) if self.problem else None
        data["problems"] = [_problem_dict(problem) for problem in self.problems]
        data["witness"] = self.witness.as_dict() if self.witness else None
        return data


def _head() -> tuple[int, str] | None:
    return ChainHead.objects.filter(pk=1).values_list("sequence", "hash").first()


# `time` as canonical text (audit.chain.canonical_time), made by the database: parsing a million
# datetimes in Python costs more than hashing them.
_CANONICAL_TIME_SQL = {
    "postgresql": """to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')""",
    # Django keeps SQLite times as UTC text "YYYY-MM-DD HH:MM:SS[.ffffff]".
    "sqlite": "replace(time, ' ', 'T') || CASE WHEN length(time) = 19 THEN '.000000' ELSE '' END || '+00:00'",
}


def _stored_rows(chunk_size: int = VERIFY_CHUNK) -> Iterator[tuple]:
    """Every entry as stored, oldest first: EXPORT_FIELDS with `time` as canonical text and the JSON
    columns as their raw text.

    A chunked cursor (server-side on PostgreSQL) and no ORM row conversion: this is verify's hot loop.
    """
    columns = ", ".join(_CANONICAL_TIME_SQL[connection.vendor] if name == "time" else name for name in EXPORT_FIELDS)
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM audit_auditentry ORDER BY sequence")  # noqa: S608 - model columns
        while rows := cursor.fetchmany(chunk_size):
            yield from rows


def verify_log() -> VerifyReport:
    """Check the whole log: genesis, sequence gaps, every link, every recomputed hash, then the tail
    against the chain head and every signed checkpoint in the database, then against every checkpoint
    in the witness file outside the database (a cut-off tail is caught even when the head was moved
    back and the newest checkpoints deleted with it).

    Never raises for a damaged log: the report names every problem found, the first one first.
    """
    started = clock.monotonic()
    report = VerifyReport(witness=WitnessReport(file=str(settings.AUDIT_WITNESS_FILE)))
    # The witness file first: whatever it holds was committed to the database before it was written there.
    witnessed = _read_witness(report.witness)
    head_before = _head()
    checkpoints = list(AuditCheckpoint.objects.order_by("sequence", "id"))
    report.checkpoints = len(checkpoints)
    report.latest_checkpoint = checkpoints[-1].sequence if checkpoints else None
    watch = {c.sequence for c in checkpoints} | {s.sequence for s in witnessed}
    watch |= {head_before[0]} if head_before else set()
    walked, seen = walk(_stored_rows(), watch=watch)
    report.entries, report.last_sequence, report.last_hash = walked.entries, walked.last_sequence, walked.last_hash
    signatures = _Signatures()
    if walked.problem:
        report.problems.append(walked.problem)
    elif problem := _tail_problem(walked.last_sequence, seen, checkpoints, head_before, signatures):
        report.problems.append(problem)
    _check_witness(report.witness, witnessed, checkpoints, walked, seen, signatures)
    report.problems += report.witness.problems
    report.notes += report.witness.notes
    report.seconds = round(clock.monotonic() - started, 3)
    return report


def _tail_problem(
    last: int,
    seen: dict[int, str],
    checkpoints: list[AuditCheckpoint],
    head: tuple[int, str] | None,
    signatures: _Signatures,
) -> Problem | None:
    """The first disagreement between an intact chain ending at `last` and its checkpoints or head."""
    for checkpoint in checkpoints:
        if problem := signatures.problem(witness.Statement.of(checkpoint), f"checkpoint {checkpoint.pk}"):
            return Problem(checkpoint.sequence, problem, Finding.BAD_SIGNATURE)
        signed = f"checkpoint {checkpoint.pk} signed at {canonical_time(checkpoint.created_at)}"
        if checkpoint.sequence > last:
            return Problem(
                last + 1,
                f"missing: the log ends at #{last} but {signed} covers #{checkpoint.sequence} (the tail was cut off)",
                Finding.CUT_TAIL,
            )
        if seen.get(checkpoint.sequence) != checkpoint.hash:
            return Problem(
                checkpoint.sequence,
                f"its hash differs from the one in {signed} (the log was rewritten)",
                Finding.REWRITTEN,
            )
    if head is None:
        return Problem(None, "the chain head row is missing", Finding.HEAD_MISMATCH) if last else None
    if head[0] > last:
        message = f"missing: the log ends at #{last} but the chain head is at #{head[0]} (cut off)"
        return Problem(last + 1, message, Finding.CUT_TAIL)
    if head[0] < last:
        head = _head()  # entries may have been appended while we walked
        if head is None or head[0] < last:
            return Problem(
                (head[0] if head else 0) + 1,
                "appended behind the audit service's back: it lies beyond the chain head",
                Finding.APPENDED_BEHIND,
            )
        return None
    if seen.get(head[0]) != head[1]:
        return Problem(head[0], "its hash differs from the chain head's", Finding.HEAD_MISMATCH)
    return None


def _read_witness(found: WitnessReport) -> list[witness.Statement]:
    """The checkpoints in the witness file; what is wrong with the file itself goes into `found`."""
    path = settings.AUDIT_WITNESS_FILE
    try:
        held = witness.read(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        found.present = True
        found.problems.append(
            Problem(None, f"the witness file {path} cannot be read: {exc.strerror or exc}", Finding.WITNESS_UNREADABLE)
        )
        return []
    found.present = True
    if held.bad_lines:
        lines = ", ".join(f"line {number} ({why})" for number, why in held.bad_lines[:5])
        more = f" and {len(held.bad_lines) - 5} more" if len(held.bad_lines) > 5 else ""
        found.problems.append(
            Problem(
                None,
                f"the witness file {path} holds lines that are not checkpoints: {lines}{more} (it was edited)",
                Finding.WITNESS_UNREADABLE,
            )
        )
    if held.torn_lines:
        lines = f"line{'s' if len(held.torn_lines) > 1 else ''} {', '.join(map(str, held.torn_lines))}"
        found.notes.append(
            f"the witness file {path} has an incomplete {lines} (a write cut short by a crash or a power cut): left out"
        )
    return held.statements


def _sequences(statements: list[witness.Statement]) -> str:
    listed = ", ".join(f"#{s.sequence}" for s in statements[:10])
    return listed + (f" and {len(statements) - 10} more" if len(statements) > 10 else "")


def _check_witness(
    found: WitnessReport,
    witnessed: list[witness.Statement],
    checkpoints: list[AuditCheckpoint],
    walked: Walk,
    seen: dict[int, str],
    signatures: _Signatures,
) -> None:
    """Compare the log with the checkpoints witnessed outside the database; findings go into `found`.

    Only checkpoints the instance key signed are believed: each one that is not is reported. Every other kind of
    finding is reported once, naming the first checkpoint it concerns (and listing the others)."""
    path = settings.AUDIT_WITNESS_FILE
    if not found.present:
        witnessed_in_database = sum(1 for checkpoint in checkpoints if checkpoint.witnessed)
        if witnessed_in_database:
            found.problems.append(
                Problem(
                    None,
                    f"the witness file {path} is missing, but {witnessed_in_database} checkpoint(s) in the database "
                    "were witnessed to it (it was deleted or moved; VIGILUS_AUDIT_WITNESS_FILE names it)",
                    Finding.WITNESS_MISSING,
                )
            )
        elif checkpoints:
            found.notes.append(
                f"the log has never been witnessed outside the database: its {len(checkpoints)} checkpoint(s) "
                "predate the witness file; the next checkpoint (`manage.py audit checkpoint`) is witnessed"
            )
        return
    found.checkpoints = len(witnessed)
    found.latest = max((s.sequence for s in witnessed), default=None)
    trusted = []
    for statement in sorted(witnessed, key=lambda s: (s.sequence, s.line)):
        what = f"the checkpoint at #{statement.sequence} on line {statement.line} of the witness file"
        if problem := signatures.problem(statement, what):
            found.problems.append(Problem(statement.sequence, problem, Finding.BAD_SIGNATURE))
        else:
            trusted.append(statement)
    last = walked.last_sequence
    beyond = [s for s in trusted if s.sequence > last]
    if beyond and walked.problem is None:  # a broken chain already ends the walk early
        newest = beyond[-1]
        found.problems.append(
            Problem(
                last + 1,
                f"missing: the log ends at #{last} but the checkpoint witnessed outside the database at "
                f"{newest.created_at} covers #{newest.sequence} (the tail was cut off)",
                Finding.CUT_TAIL,
            )
        )
    differ = [s for s in trusted if s.sequence <= last and seen.get(s.sequence) != s.hash]
    if differ:
        found.problems.append(
            Problem(
                differ[0].sequence,
                f"its hash differs from the checkpoint witnessed outside the database at {differ[0].created_at} "
                f"(the log was rewritten; witnessed checkpoints that differ: {_sequences(differ)})",
                Finding.REWRITTEN,
            )
        )
    in_database = {witness.Statement.of(checkpoint).key for checkpoint in checkpoints}
    gone = [s for s in trusted if s.key not in in_database]
    if gone:
        found.problems.append(
            Problem(
                gone[0].sequence,
                f"the checkpoint witnessed outside the database at {gone[0].created_at} is missing from the database "
                f"(deleted; witnessed checkpoints missing: {_sequences(gone)})",
                Finding.CHECKPOINT_MISSING,
            )
        )


# --- reading and export ----------------------------------------------------------------------------


def entries_since(since: datetime | None = None, queryset: QuerySet | None = None) -> Iterator[dict[str, Any]]:
    """Entries (oldest first) as plain dicts of every column, streamed in chunks."""
    qs = AuditEntry.objects.all() if queryset is None else queryset
    if since is not None:
        qs = qs.filter(time__gte=since)
    yield from qs.order_by("sequence").values(*EXPORT_FIELDS).iterator(chunk_size=VERIFY_CHUNK)


def _exportable(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "time": canonical_time(row["time"])}


def export_lines(fmt: str, rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The rows as JSON Lines ('jsonl') or CSV with a header ('csv'), one line at a time."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(_exportable(row), ensure_ascii=False, sort_keys=True) + "\n"
        return
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}: choose jsonl or csv")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    for row in rows:
        row = _exportable(row)
        writer.writerow(
            [
                json.dumps(row[f], ensure_ascii=False, sort_keys=True)
                if f in ("arguments", "details") and row[f] is not None
                else row[f]
                for f in EXPORT_FIELDS
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


# --- the Audit page --------------------------------------------------------------------------------

PAGE_SIZE = 50


@dataclass
class EntryPage:
    """One page of entries, newest first, with the keys of the pages around it (None: no such page)."""

    entries: list[AuditEntry]
    older: int | None  # ?before=<older> shows the next, older page
    newer: int | None  # ?after=<newer> shows the previous, newer page


def search(
    *,
    actor: str = "",
    run: int | None = None,
    tool: str = "",
    intent: str = "",
    decision: str = "",
    event: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEntry]:
    """Entries matching every given filter. Time bounds become sequence bounds (one indexed lookup
    each; `time` never decreases along `sequence`), so every filter walks an index by sequence."""
    qs = AuditEntry.objects.all()
    exact = {"actor": actor, "run_id": run, "tool": tool, "intent": intent, "decision": decision, "event": event}
    qs = qs.filter(**{k: v for k, v in exact.items() if v not in ("", None)})
    if since is not None:
        first = AuditEntry.objects.filter(time__gte=since).order_by("time").values_list("sequence", flat=True).first()
        qs = qs.filter(sequence__gte=first) if first is not None else qs.none()
    if until is not None:
        last = AuditEntry.objects.filter(time__lte=until).order_by("-time").values_list("sequence", flat=True).first()
        qs = qs.filter(sequence__lte=last) if last is not None else qs.none()
    return qs


def keyset_page(
    qs: QuerySet[AuditEntry], *, before: int | None = None, after: int | None = None, size: int = PAGE_SIZE
) -> EntryPage:
    """A page of `qs` by sequence, no OFFSET and no COUNT: `before` gives the entries just older than
    it, `after` those just newer, neither the newest. Costs one index walk of size+1 rows."""
    if after is not None:
        rows = list(qs.filter(sequence__gt=after).order_by("sequence")[: size + 1])
        has_newer = len(rows) > size
        entries = rows[:size][::-1]
        older = entries[-1].sequence if entries and qs.filter(sequence__lt=entries[-1].sequence).exists() else None
        return EntryPage(entries, older, entries[0].sequence if has_newer and entries else None)
    if before is not None:
        qs = qs.filter(sequence__lt=before)
    rows = list(qs.order_by("-sequence")[: size + 1])
    entries = rows[:size]
    older = entries[-1].sequence if len(rows) > size else None
    newer = entries[0].sequence if before is not None and entries else None
    return EntryPage(entries, older, newer)
