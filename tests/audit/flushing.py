"""pytest plugin: Django's test flush may empty the append-only audit tables, and each test starts without a
witness file.

The audit triggers refuse DELETE and TRUNCATE from every session; no setting a session can change lets one
through (audit/triggers.py). Transactional tests end with `manage.py flush` (DELETE on SQLite, TRUNCATE on
PostgreSQL), so this plugin runs every flush in one transaction that drops the audit triggers, empties the
tables and creates the triggers again: what only the owner of the tables can do, and the test suite owns its
test database. The DDL is transactional on both databases, so no other connection ever sees the tables
without their triggers; if the flush fails, the rollback puts them back.

The witness file (settings.AUDIT_WITNESS_FILE, in the run's data directory) records checkpoints of the log;
the log goes with each test (rolled back or flushed), so its witness file goes too.

Loaded for the whole suite by `-p tests.audit.flushing` (pyproject addopts); tests/audit/conftest.py
also uses it so `pytest tests/audit` works on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

_PATCHED = "_audit_flush_allowed"


def _allow_flush() -> bool:
    """Wrap BaseDatabaseOperations.execute_sql_flush once; returns True when this call did it."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    if getattr(BaseDatabaseOperations.execute_sql_flush, _PATCHED, False):
        return False
    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        from django.db import transaction

        from audit import triggers

        with transaction.atomic(using=self.connection.alias):
            triggers.uninstall(self.connection)
            original(self, sql_list)
            triggers.install(self.connection)

    setattr(execute_sql_flush, _PATCHED, True)
    execute_sql_flush.original = original  # type: ignore[attr-defined]
    BaseDatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]
    return True


def _restore() -> None:
    from django.db.backends.base.operations import BaseDatabaseOperations

    patched = BaseDatabaseOperations.execute_sql_flush
    if getattr(patched, _PATCHED, False):
        BaseDatabaseOperations.execute_sql_flush = patched.original  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def audit_log_flushable() -> Iterator[None]:
    """For the whole session, Django's flush between transactional tests may empty the audit log."""
    patched = _allow_flush()
    yield
    if patched:
        _restore()


@pytest.fixture(autouse=True)
def audit_witness_file_per_test() -> Iterator[None]:
    """No test sees the checkpoints another test witnessed: the witness file is removed before and after each."""
    from django.conf import settings

    path = Path(settings.AUDIT_WITNESS_FILE)
    path.unlink(missing_ok=True)
    yield
    path.unlink(missing_ok=True)
