"""The audit.E001 system check: the append-only triggers must be in place."""

from __future__ import annotations

import pytest
from django.core import checks
from django.db import connection

from audit import triggers

pytestmark = pytest.mark.django_db


def audit_errors() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks(databases=["default"], tags=["database"]) if m.id.startswith("audit.")]


def test_the_check_passes_after_migrate() -> None:
    assert triggers.missing(connection) == []
    assert audit_errors() == []


def test_the_check_fails_when_a_trigger_is_dropped() -> None:
    name, (table, _sql) = next(iter(triggers.expected_triggers(connection.vendor).items()))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if connection.vendor == "postgresql" else ""))
    try:
        errors = audit_errors()
        assert [e.id for e in errors] == ["audit.E001"] and name in errors[0].msg
    finally:
        triggers.install(connection)
    assert audit_errors() == []
