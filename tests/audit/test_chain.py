"""Appending to the chain: columns, redaction, links, transactions, and refusals at every layer."""

from __future__ import annotations

import contextlib
import json
import logging

import pytest
from django.db import DatabaseError, connection, migrations, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from audit import services, triggers
from audit.chain import GENESIS, entry_hash
from audit.models import AppendOnlyError, AuditCheckpoint, AuditEntry, ChainHead
from audit.services import AuditWriteError, record, verify_log
from vigilus.redaction import MASK, remember_secret, remember_stored_secret, secret_looking_key

pytestmark = pytest.mark.django_db
SECRET_IN_DATA = "s3cr3t-in-the-arguments"
NUMERIC_SECRET = 90417736  # a stored secret made of digits (a PIN in an MCP server's env)


def content_of(entry: AuditEntry) -> dict:
    from audit.chain import HASHED_FIELDS

    return {name: getattr(entry, name) for name in HASHED_FIELDS}


def test_entries_chain_from_genesis_and_verify() -> None:
    first = record("provider.created", actor="alice", provider="ollama")
    second = record("tool_call.decision", actor="ops-bot", actor_kind="operator", decision="allowed", tool="shell__x")
    third = record("grant.issued", grant=7)
    assert [first.sequence, second.sequence, third.sequence] == [1, 2, 3]
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    for entry in AuditEntry.objects.all():
        assert entry.hash == entry_hash(content_of(entry))  # what was stored hashes the same once read back
    assert ChainHead.objects.values_list("sequence", "hash").get() == (3, third.hash)
    report = verify_log()
    assert report.ok and report.entries == 3 and report.last_sequence == 3


def test_known_keys_become_columns_and_the_rest_details_all_redacted() -> None:
    remember_secret("s3cr3t-value-123")
    entry = record(
        "tool_call.outcome",
        actor="ops-bot",
        actor_kind="operator",
        run=12,
        tool="ssh__exec",
        intent="exec",
        decision="approved",
        outcome="failed",
        reason="restart nginx",
        grant="34",
        target="web1",
        arguments={"command": "echo s3cr3t-value-123", "password": "hunter2hunter2", "n": 3},
        result_summary="printed s3cr3t-value-123",
        duration_ms=41.6,
        error="Authorization: Bearer abcdefghijkl",
        intent_reason="ran a command",
        policy_reason="covered by grant #34",
    )
    entry = AuditEntry.objects.get(pk=entry.pk)
    assert (entry.actor, entry.actor_kind, entry.run_id, entry.grant_id) == ("ops-bot", "operator", 12, 34)
    assert (entry.tool, entry.intent, entry.decision, entry.outcome) == ("ssh__exec", "exec", "approved", "failed")
    assert (entry.reason, entry.target, entry.duration_ms) == ("restart nginx", "web1", 42)
    assert entry.arguments == {"command": "echo [REDACTED]", "password": "[REDACTED]", "n": 3}
    assert entry.result_summary == "printed [REDACTED]"
    assert "abcdefghijkl" not in entry.error
    assert entry.details == {"intent_reason": "ran a command", "policy_reason": "covered by grant #34"}
    assert verify_log().ok


def test_everything_under_a_secret_looking_key_is_masked_also_numbers_and_lists(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="vigilus.audit")
    remember_stored_secret(json.dumps({"SESSION_PIN": "55012345"}))  # an MCP server's env
    entry = record(
        "tool_call.decision",
        arguments={
            "api_token": 48213377,  # a numeric token
            "password": ["hunter2hunter2", 7740214],
            "credentials": {"user": "backup", "pin": 991204},
            "session_pin": 55012345,  # not under a secret-looking key, but a stored secret
            "port": 8443123,  # neither
            "usage": {"max_tokens": 128000, "total_tokens": 153422},  # counts of tokens, not tokens
        },
    )
    stored = AuditEntry.objects.get(pk=entry.pk).arguments
    assert stored == {
        "api_token": MASK,
        "password": [MASK, MASK],
        "credentials": {"user": MASK, "pin": MASK},
        "session_pin": MASK,
        "port": 8443123,
        "usage": {"max_tokens": 128000, "total_tokens": 153422},
    }
    (line,) = [r.getMessage() for r in caplog.records if r.name == "vigilus.audit"]
    assert not [
        secret for secret in ("48213377", "hunter2", "7740214", "991204", "backup", "55012345") if secret in line
    ]
    assert json.loads(line)["arguments"] == stored


def test_actor_kind_defaults_to_system_or_user() -> None:
    assert record("beat.tick").actor_kind == "system"
    assert record("provider.changed", actor="alice").actor_kind == "user"


def test_odd_values_are_stored_as_they_hash() -> None:
    from datetime import datetime
    from decimal import Decimal

    entry = record("x", run="not-an-id", arguments={"when": datetime(2025, 1, 1), 5: Decimal("1.5"), "nul": "a\x00b"})
    stored = AuditEntry.objects.get(pk=entry.pk)
    assert stored.run_id is None and stored.details == {"run_id": "not-an-id"}
    assert stored.arguments == {"when": "2025-01-01 00:00:00", "5": "1.5", "nul": "a\ufffdb"}
    assert verify_log().ok


def test_an_entry_that_cannot_be_serialised_is_refused() -> None:
    with pytest.raises(AuditWriteError):
        record("x", arguments={"value": float("nan")})
    assert not AuditEntry.objects.exists()


def test_a_database_failure_becomes_audit_write_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(using: str, columns: dict, durable: bool) -> object:
        raise DatabaseError("disk I/O error")

    monkeypatch.setattr(services, "_append", broken)
    with pytest.raises(AuditWriteError, match="disk I/O error"):
        record("tool_call.decision", decision="allowed")


def test_a_failed_outer_transaction_rolls_back_its_entry() -> None:
    record("before")

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        record("inside", actor="alice")
        raise Boom
    assert list(AuditEntry.objects.values_list("event", flat=True)) == ["before"]
    assert record("after").sequence == 2  # the head rolled back too: no gap
    assert verify_log().ok


def test_an_entry_that_cannot_be_written_takes_the_work_of_its_transaction_with_it(monkeypatch) -> None:
    from django.contrib.auth.models import Group

    record("before")
    monkeypatch.setattr(services, "_PG_APPEND", "SELECT * FROM no_such_table")  # the database refuses
    monkeypatch.setattr(services, "_SQLITE_INSERT", "INSERT INTO no_such_table VALUES (%s)")
    with pytest.raises(AuditWriteError), transaction.atomic():
        Group.objects.create(name="made-with-the-entry")
        record("inside")
    monkeypatch.undo()
    assert not Group.objects.filter(name="made-with-the-entry").exists()
    assert list(AuditEntry.objects.values_list("event", flat=True)) == ["before"] and verify_log().ok


def test_model_save_and_delete_of_an_existing_entry_are_refused() -> None:
    entry = record("x")
    entry.event = "y"
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        entry.delete()
    assert AuditEntry.objects.get().event == "x"


def test_queryset_update_and_delete_are_refused() -> None:
    record("x")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.filter(sequence=1).update(event="y")
    with pytest.raises(AppendOnlyError):
        AuditEntry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        AuditCheckpoint.objects.all().delete()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditentry SET decision = 'allowed'",
        "UPDATE audit_auditentry SET event = 'x' WHERE sequence = 1",
        "DELETE FROM audit_auditentry",
        "DELETE FROM audit_auditentry WHERE sequence = 1",
        "UPDATE audit_auditcheckpoint SET sequence = 1",
        "DELETE FROM audit_auditcheckpoint",
    ],
)
def test_raw_sql_update_and_delete_are_refused_by_the_database(sql: str) -> None:
    record("x")
    services.take_checkpoint()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEntry.objects.get().event == "x" and AuditCheckpoint.objects.count() == 1


def test_emptying_the_table_at_once_is_refused() -> None:
    """TRUNCATE on PostgreSQL; SQLite has none, and its DELETE without WHERE fires the row trigger."""
    record("x")
    sql = "TRUNCATE audit_auditentry" if connection.vendor == "postgresql" else "DELETE FROM audit_auditentry"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEntry.objects.count() == 1


# The session switch earlier versions had: PostgreSQL's trigger function let DELETE/TRUNCATE through when the session
# had set vigilus.audit_maintenance = 'on'; SQLite's DELETE triggers did while the connection had a TEMP table
# audit_maintenance. Any connection can do either.
OLD_PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {triggers.PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE')
       AND coalesce(current_setting('vigilus.audit_maintenance', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
OLD_SQLITE_DELETE_TRIGGER = (
    "CREATE TRIGGER audit_auditentry_no_delete BEFORE DELETE ON audit_auditentry WHEN NOT EXISTS "
    "(SELECT 1 FROM pragma_table_list WHERE schema = 'temp' AND name = 'audit_maintenance') "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
)


def _switch_on_and_delete(sql: str) -> None:
    """What any connection could do to get past the earlier triggers: switch maintenance on, then delete."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config('vigilus.audit_maintenance', 'on', true)")
        else:
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS audit_maintenance (on_purpose INTEGER)")
        cursor.execute(sql)


def _emptying_statements() -> list[str]:
    statements = ["DELETE FROM audit_auditentry WHERE sequence = 2", "DELETE FROM audit_auditcheckpoint"]
    return statements + (["TRUNCATE audit_auditentry"] if connection.vendor == "postgresql" else [])


def test_no_session_can_switch_the_triggers_off() -> None:
    """`set_config('vigilus.audit_maintenance', 'on', true); DELETE ...` (SQLite: a TEMP table audit_maintenance)
    is refused like any other DELETE: the triggers have no switch."""
    record("x")
    record("y")
    services.take_checkpoint()
    for sql in _emptying_statements():
        with pytest.raises(DatabaseError, match="append-only"):
            _switch_on_and_delete(sql)
    assert AuditEntry.objects.count() == 2 and AuditCheckpoint.objects.count() == 1
    assert verify_log().ok


if connection.vendor == "postgresql":  # collected in the PostgreSQL pass only (SQLite has no such setting)

    def test_a_replica_session_does_not_skip_the_triggers_on_postgresql() -> None:
        """`session_replication_role = replica` (a superuser may set it for its own session, as the test database's
        role is) skips ordinary triggers; the audit triggers fire ALWAYS."""
        record("x")
        record("y")
        services.take_checkpoint()
        for sql in _emptying_statements():
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
                c.execute("SELECT set_config('session_replication_role', 'replica', true)")
                c.execute(sql)
        assert AuditEntry.objects.count() == 2 and AuditCheckpoint.objects.count() == 1 and verify_log().ok


def test_the_migration_takes_the_switch_away_from_a_database_that_had_it() -> None:
    """An installation from before migration 0003 has triggers that let a switched-on session delete; the migration
    installs them again, without the switch."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.apps import apps

    record("x")
    record("y")
    with connection.cursor() as cursor:  # the triggers as the earlier version installed them
        if connection.vendor == "postgresql":
            cursor.execute(OLD_PG_FUNCTION_SQL)
        else:
            cursor.execute("DROP TRIGGER audit_auditentry_no_delete")
            cursor.execute(OLD_SQLITE_DELETE_TRIGGER)
    with transaction.atomic():
        _switch_on_and_delete("DELETE FROM audit_auditentry WHERE sequence = 2")  # it worked then
        assert AuditEntry.objects.count() == 1
        transaction.set_rollback(True)
    migration = import_module("audit.migrations.0003_witnessed_checkpoints_no_bypass").Migration
    (reinstall,) = [op for op in migration.operations if isinstance(op, migrations.RunPython)]
    reinstall.code(apps, SimpleNamespace(connection=connection))  # what `migrate` runs (schema_editor.connection)
    with pytest.raises(DatabaseError, match="append-only"):
        _switch_on_and_delete("DELETE FROM audit_auditentry WHERE sequence = 2")
    assert AuditEntry.objects.count() == 2 and triggers.missing(connection) == []


def test_the_fast_canonical_row_is_the_canonical_json_of_the_entry() -> None:
    from audit.chain import HASHED_FIELDS, JSON_FIELDS, canonical_json, canonical_row, canonical_time

    entry = record(
        "tool_call.decision",
        actor='o"p\\é',
        run=3,
        arguments={"z": [1, 2.5, None, True], "a": {"ü": "\n"}},
        duration_ms=7,
        note="x",
    )
    entry = AuditEntry.objects.get(pk=entry.pk)
    as_dict = {name: getattr(entry, name) for name in HASHED_FIELDS}
    as_dict["time"] = canonical_time(as_dict["time"])
    row = tuple(canonical_json(v) if k in JSON_FIELDS else v for k, v in as_dict.items())
    assert canonical_row(row) == canonical_json(as_dict)
    assert entry.hash == entry_hash(content_of(entry))


# Outside any transaction (how the gateway records a call) an entry is appended in a transaction of its own.


def _stored(entry: AuditEntry) -> dict:
    return content_of(AuditEntry.objects.get(pk=entry.pk)) | {"hash": AuditEntry.objects.get(pk=entry.pk).hash}


@pytest.mark.django_db(transaction=True)
def test_an_entry_outside_any_transaction_is_committed_as_returned_whether_or_not_queries_are_watched() -> None:
    from django.test.utils import CaptureQueriesContext

    assert not connection.in_atomic_block
    first = record("tool_call.decision", actor="ops-bot", arguments={"command": "uptime"}, decision="allowed")
    with CaptureQueriesContext(connection) as queries:  # what DEBUG and query-counting tests see
        second = record("tool_call.outcome", actor="ops-bot", outcome="succeeded", duration_ms=3, note="é")
    assert any("audit_auditentry" in query["sql"] for query in queries.captured_queries)
    for entry in (first, second):
        assert content_of(entry) | {"hash": entry.hash} == _stored(entry)
        assert entry.hash == entry_hash(content_of(entry))
    assert second.prev_hash == first.hash
    assert ChainHead.objects.values_list("sequence", "hash").get() == (2, second.hash)
    assert verify_log().ok


@pytest.mark.django_db(transaction=True)
def test_an_entry_that_fails_outside_any_transaction_leaves_nothing_behind(monkeypatch) -> None:
    first = record("before")
    monkeypatch.setattr(services, "_PG_APPEND", "SELECT * FROM no_such_table")
    monkeypatch.setattr(services, "_SQLITE_INSERT", "INSERT INTO no_such_table VALUES (%s)")
    with pytest.raises(AuditWriteError, match="no_such_table"):
        record("lost", arguments={"x": 1})
    monkeypatch.undo()
    assert ChainHead.objects.values_list("sequence", "hash").get() == (1, first.hash)  # the head did not move
    assert record("after").sequence == 2 and verify_log().ok
    assert list(AuditEntry.objects.order_by("sequence").values_list("event", flat=True)) == ["before", "after"]
    with transaction.atomic():  # the connection was not left inside a transaction
        record("inside")
    assert AuditEntry.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_durable_entry_written_alone_is_synced_to_disk() -> None:
    """SQLite syncs a WAL commit only at checkpoints (synchronous=NORMAL), so a power cut may lose the last few
    commits: a durable entry's commit is synced itself (synchronous=FULL for that transaction, then NORMAL
    again). PostgreSQL: Vigilus's connections sync every commit, whatever the server's default."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # asked for by Vigilus's connection, not left to the server's default
            cursor.execute("SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'")
            assert cursor.fetchone() == ("on", "client")
        assert record("tool_call.decision", decision="allowed", intent="exec", durable=True).sequence == 1
        return
    record("warm-up")  # the connection is open
    statements: list[str] = []
    connection.connection.set_trace_callback(statements.append)
    try:
        record("tool_call.decision", decision="allowed", intent="exec", durable=True)
        durable = list(statements)
        statements.clear()
        record("tool_call.decision", decision="allowed", intent="read")
    finally:
        connection.connection.set_trace_callback(None)
    assert durable[:3] == ["PRAGMA synchronous", "PRAGMA synchronous=FULL", "BEGIN IMMEDIATE"]
    assert durable[-2:] == ["COMMIT", "PRAGMA synchronous=1"]
    assert not any(statement.startswith("PRAGMA") for statement in statements)
    with connection.cursor() as cursor:
        assert cursor.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL, for every later commit
    assert verify_log().ok


@pytest.mark.parametrize("watched", [False, True])
def test_an_entry_is_refused_in_a_transaction_that_already_failed(watched: bool) -> None:
    """A caller that caught a database error inside its transaction cannot record as if all were well: the entry
    would be rolled back with the transaction, silently."""
    from django.contrib.auth.models import Group
    from django.db import IntegrityError
    from django.test.utils import CaptureQueriesContext

    record("before")  # the chain has a head: the append itself is what must refuse
    Group.objects.create(name="taken")
    with transaction.atomic():
        with contextlib.suppress(IntegrityError):
            Group.objects.create(name="taken")  # no savepoint: the transaction is now unusable
        with CaptureQueriesContext(connection) if watched else contextlib.nullcontext(), pytest.raises(AuditWriteError):
            record("after a failure")


@pytest.mark.django_db(transaction=True)
def test_a_missing_chain_head_is_made_again_from_the_log_outside_any_transaction() -> None:
    first = record("one")
    ChainHead.objects.all().delete()
    second = record("two")
    assert second.sequence == 2 and second.prev_hash == first.hash and verify_log().ok


_KEYS = st.sampled_from(["path", "password", "api_key", "Token", "text", "é", "", SECRET_IN_DATA]) | st.text(max_size=8)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(NUMERIC_SECRET)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([SECRET_IN_DATA, f"x{SECRET_IN_DATA}y", "Bearer abcdef123456", "a\x00b", "C:\\u0000x", "plain"])
    | st.text(max_size=12)
)
_DATA = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_KEYS, inner, max_size=3)
        | st.dictionaries(st.integers(0, 3), inner, max_size=2)
    ),
    max_leaves=8,
)


def _strings(value: object) -> list[str]:
    """Every string and key, at any depth."""
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *_strings(item)]]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _under_secret_keys(value: object, under: bool = False) -> list[object]:
    """Every non-empty string and every number of 6 characters or more under a secret-looking key, at any depth
    below it."""
    if isinstance(value, dict):
        return [
            found for key, item in value.items() for found in _under_secret_keys(item, under or secret_looking_key(key))
        ]
    if isinstance(value, list):
        return [found for item in value for found in _under_secret_keys(item, under)]
    if isinstance(value, bool) or value is None or not under:
        return []
    return [value] if (isinstance(value, str) and value) or len(json.dumps(value)) >= 6 else []


@settings(max_examples=300, deadline=None)
@given(value=_DATA)
def test_stored_json_is_plain_redacted_and_the_same_whichever_path_made_it(value: object) -> None:
    """Plain JSON data is scrubbed in one walk; anything else goes through JSON text first. Either way what is
    stored is JSON as the database gives it back, with no known secret, no NUL, and secret-keyed strings masked."""
    remember_secret(SECRET_IN_DATA)
    remember_secret(str(NUMERIC_SECRET))
    try:
        cleaned = services._clean_json(value)
    except ValueError:  # NaN or infinity: refused
        with pytest.raises(ValueError):
            json.dumps(value, default=str, allow_nan=False)
        return
    assert json.loads(json.dumps(cleaned)) == cleaned
    assert not [text for text in _strings(cleaned) if SECRET_IN_DATA in text or "\x00" in text]
    assert str(NUMERIC_SECRET) not in json.dumps(cleaned)
    assert set(_under_secret_keys(cleaned)) <= {MASK}
    assert services._clean_json(json.loads(json.dumps(value, default=str, ensure_ascii=False))) == cleaned


@settings(max_examples=300, deadline=None)
@given(arguments=_DATA, detail=_DATA, reason=_SCALARS)
def test_the_log_line_of_an_entry_is_made_of_redacted_columns_only(
    arguments: object, detail: object, reason: object
) -> None:
    """The log's filter leaves an audit entry's line alone: the line must hold no known secret, no bearer token, and
    nothing unmasked under a secret-looking key, whatever the arguments."""
    remember_secret(SECRET_IN_DATA)
    remember_secret(str(NUMERIC_SECRET))
    details = {"arguments": arguments, "reason": reason, "extra": detail, "token": detail}
    try:
        columns = services._columns("tool_call.outcome", "ops-bot", None, details)
    except ValueError:  # NaN or infinity: refused, nothing logged
        return
    line = services.log_line(7, columns)
    assert not [text for text in (SECRET_IN_DATA, str(NUMERIC_SECRET), "abcdef123456", "\x00") if text in line]
    logged = json.loads(line)
    assert set(_under_secret_keys(logged)) <= {MASK}
    assert logged["sequence"] == 7 and logged["event"] == "tool_call.outcome"
