"""pytest plugin: Django's test flush may empty the append-only audit tables.

Transactional tests end with `manage.py flush` (DELETE on SQLite, TRUNCATE on PostgreSQL), which the
audit triggers refuse like any other DELETE. This plugin runs every flush inside
`audit.triggers.maintenance()`: on that connection only, for that transaction only, DELETE/TRUNCATE
of audit rows passes. Raw UPDATE/DELETE anywhere else is still refused.

Loaded for the whole suite by `-p tests.audit.flushing` (pyproject addopts); tests/audit/conftest.py
also uses it so `pytest tests/audit` works on its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

_PATCHED = "_audit_flush_allowed"


def _allow_flush() -> bool:
    """Wrap BaseDatabaseOperations.execute_sql_flush once; returns True when this call did it."""
    from django.db.backends.base.operations import BaseDatabaseOperations

    if getattr(BaseDatabaseOperations.execute_sql_flush, _PATCHED, False):
        return False
    original = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(self: BaseDatabaseOperations, sql_list: list[str]) -> None:
        from audit.triggers import maintenance

        with maintenance(self.connection.alias):
            original(self, sql_list)

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
