"""Database triggers that make the audit tables append-only, below Django.

SQLite and PostgreSQL refuse every UPDATE and DELETE on the audit tables (PostgreSQL also TRUNCATE),
raw SQL included. One narrow exception exists for emptying a database on purpose (Django's test
flush): DELETE/TRUNCATE pass while *this connection* has switched on maintenance with
`maintenance()`. UPDATE is never allowed.

- PostgreSQL: the session/transaction setting `vigilus.audit_maintenance = 'on'`
  (`set_config(..., is_local => true)`, so it ends with the transaction).
- SQLite has no session settings: a TEMP table `audit_maintenance`. TEMP objects exist only in the
  connection that made them; the trigger looks for it with `pragma_table_list` (SQLite >= 3.37),
  because a trigger in the main schema may not name a temp table directly.

The triggers are (re)installed by migrations with `install()`; `missing()` feeds the system check that
fails when a later migration (a SQLite table rebuild, say) has dropped one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

MESSAGE = "audit log is append-only"
MAINTENANCE_SETTING = "vigilus.audit_maintenance"
MAINTENANCE_TABLE = "audit_maintenance"
PROTECTED_TABLES = ("audit_auditentry", "audit_auditcheckpoint")
PG_FUNCTION = "audit_refuse_change"


def _sqlite_triggers(table: str) -> dict[str, str]:
    maintenance_off = (
        f"NOT EXISTS (SELECT 1 FROM pragma_table_list WHERE schema = 'temp' AND name = '{MAINTENANCE_TABLE}')"  # noqa: S608
    )
    return {
        f"{table}_no_update": (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;"
        ),
        f"{table}_no_delete": (
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} WHEN {maintenance_off} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;"
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
    IF TG_OP IN ('DELETE', 'TRUNCATE')
       AND coalesce(current_setting('{MAINTENANCE_SETTING}', true), '') = 'on' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NULL;
    END IF;
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
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D' "
                "AND tgrelid = ANY(%s::regclass[])",
                [list(PROTECTED_TABLES)],
            )
        elif connection.vendor == "sqlite":
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        else:
            return set()
        return {row[0] for row in cursor.fetchall()}


def missing(connection: BaseDatabaseWrapper) -> list[str]:
    """Names of the expected triggers that are missing (or disabled, on PostgreSQL), sorted."""
    expected = expected_triggers(connection.vendor)
    return sorted(set(expected) - present(connection))


@contextmanager
def maintenance(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Within this block, and on this connection only, DELETE/TRUNCATE of audit rows is let through.

    Runs inside one transaction: the switch goes off when the block ends, whether it commits or
    rolls back. Meant for emptying a test database (Django's flush); nothing in the product uses it.
    """
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT set_config(%s, 'on', true)", [MAINTENANCE_SETTING])
        elif connection.vendor == "sqlite":
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {MAINTENANCE_TABLE} (on_purpose INTEGER)")
        try:
            yield
        finally:
            if connection.vendor == "postgresql" and not connection.needs_rollback:
                cursor.execute("SELECT set_config(%s, '', true)", [MAINTENANCE_SETTING])
            elif connection.vendor == "sqlite" and not connection.needs_rollback:
                cursor.execute(f"DROP TABLE IF EXISTS temp.{MAINTENANCE_TABLE}")
