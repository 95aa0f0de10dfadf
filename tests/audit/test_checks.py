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


def test_install_triggers_puts_a_dropped_trigger_back_and_says_so(admin_user) -> None:
    from io import StringIO

    from django.core.management import call_command
    from django.db import DatabaseError, transaction

    from audit.models import AuditEntry
    from audit.services import record

    record("test.entry")
    name, (table, _sql) = next(iter(triggers.expected_triggers(connection.vendor).items()))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {name}" + (f" ON {table}" if connection.vendor == "postgresql" else ""))
    assert "install-triggers" in audit_errors()[0].hint
    out = StringIO()
    call_command("audit", "install-triggers", stdout=out)
    assert f"Put back: {name}." in out.getvalue() and audit_errors() == []
    (entry,) = AuditEntry.objects.filter(event="audit.triggers_installed")
    assert entry.details == {"missing": [name]} and entry.actor == admin_user.username
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry")
    out = StringIO()
    call_command("audit", "install-triggers", stdout=out)
    assert "Every trigger was in place." in out.getvalue()


def settings_errors() -> list[checks.CheckMessage]:
    return [m for m in checks.run_checks() if m.id in ("audit.E003", "audit.E004")]


def test_the_audit_settings_are_checked_and_a_bad_witness_url_is_named_without_its_secrets(settings) -> None:
    assert settings_errors() == []
    settings.AUDIT_CHECKPOINT_EVERY = -5
    settings.AUDIT_WITNESS_URLS = (
        "https://witness.example.org/hook?token=7c1d9e2f4a6b8c0d ntfy://private-topic-8a7b6c5d "
        "nosuchscheme://4f3e2d1c0b9a8f7e@example.org/x, http:///no-host"
    )
    errors = settings_errors()
    assert [e.id for e in errors] == ["audit.E003", "audit.E004", "audit.E004"]
    assert "VIGILUS_AUDIT_CHECKPOINT_EVERY is -5" in errors[0].msg
    assert "outside witness 3 in VIGILUS_AUDIT_WITNESS_URLS (nosuchscheme://example.org)" in errors[1].msg
    assert "outside witness 4" in errors[2].msg and "it has no host" in errors[2].msg
    shown = " ".join(e.msg + (e.hint or "") for e in errors)
    assert "4f3e2d1c0b9a8f7e" not in shown and "7c1d9e2f4a6b8c0d" not in shown
