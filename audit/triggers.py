"""Database triggers that make the audit tables append-only, below Django.

SQLite and PostgreSQL refuse every UPDATE and DELETE on the audit tables (PostgreSQL also TRUNCATE),
raw SQL included, from every connection. There is no switch that lets a session through: an earlier
version let DELETE/TRUNCATE pass while a session had set `vigilus.audit_maintenance = 'on'` (SQLite: had
made a TEMP table `audit_maintenance`), which any connection could do. Migration 0003 re-installs the
triggers without it, and on PostgreSQL enabled ALWAYS, so that not even a superuser's session with
`session_replication_role = replica` (which skips ordinary triggers) gets past them. Emptying the tables
takes what only the tables' owner may do: dropping the triggers (the test suite's flush drops and
re-creates them inside its own transaction, tests/audit/flushing.py), which is also what `audit verify`
and the witness outside the database are there for.

The triggers are (re)installed by migrations with `install()`; `missing()` feeds the system check that
fails when a later migration (a SQLite table rebuild, say) has dropped one.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

MESSAGE = "audit log is append-only"
PROTECTED_TABLES = ("audit_auditentry", "audit_auditcheckpoint")
PG_FUNCTION = "audit_refuse_change"


def _sqlite_triggers(table: str) -> dict[str, str]:
    return {
        f"{table}_no_update": (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;"
        ),
        f"{table}_no_delete": (
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;"
        ),
    }


def _postgresql_triggers(table: str) -> dict[str, str]:
    return {
        f"{table}_no_change": (
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_FUNCTION}();"
        ),
        f"{table}_no_truncate": (
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}();"
        ),
    }


PG_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def expected_triggers(vendor: str) -> dict[str, tuple[str, str]]:
    """Trigger name -> (table, CREATE statement) for a database vendor ('sqlite' or 'postgresql')."""
    build = {"sqlite": _sqlite_triggers, "postgresql": _postgresql_triggers}.get(vendor)
    if build is None:
        return {}
    return {name: (table, sql) for table in PROTECTED_TABLES for name, sql in build(table).items()}


def install(connection: BaseDatabaseWrapper) -> None:
    """Create (or re-create) every trigger for this connection's vendor. Idempotent."""
    triggers = expected_triggers(connection.vendor)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(PG_FUNCTION_SQL)
        for name, (table, sql) in triggers.items():
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(sql)
            if connection.vendor == "postgresql":
                # A trigger made the ordinary way does not fire in a session that set session_replication_role =
                # replica (a superuser may, for itself): ALWAYS fires in every session.
                cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}")


def uninstall(connection: BaseDatabaseWrapper) -> None:
    """Drop every trigger (for reversing the migration, and for tests that play an attacker)."""
    with connection.cursor() as cursor:
        for name, (table, _sql) in expected_triggers(connection.vendor).items():
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")


def present(connection: BaseDatabaseWrapper) -> set[str]:
    """Names of the audit triggers that exist in the database."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Only 'A' fires in every session: 'O' not under session_replication_role = replica, 'R' only there,
            # 'D' never. Anything but 'A' counts as missing.
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled = 'A' "
                "AND tgrelid = ANY(%s::regclass[])",
                [list(PROTECTED_TABLES)],
            )
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            return set()
        return {row[0] for row in cursor.fetchall()}


def missing(connection: BaseDatabaseWrapper) -> list[str]:
    """Names of the expected triggers that are missing (or do not fire in every session, on PostgreSQL), sorted."""
    expected = expected_triggers(connection.vendor)
    return sorted(set(expected) - present(connection))
