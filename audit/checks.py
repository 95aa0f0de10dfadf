"""System checks: the append-only triggers are in place once their migration has run; the audit settings make sense."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from audit import triggers, witness

TRIGGER_MIGRATION = ("audit", "0002_append_only_triggers")


def check_triggers(app_configs: Any = None, databases: list[str] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """audit.E001 for each database where a trigger is missing after its migration was applied.

    Before that migration has run (a fresh database, `migrate` about to create them) nothing is checked.
    """
    errors: list[CheckMessage] = []
    for alias in databases or []:
        connection = connections[alias]
        if not triggers.expected_triggers(connection.vendor):
            continue
        try:
            applied = MigrationRecorder(connection).applied_migrations()
            if TRIGGER_MIGRATION not in applied:
                continue
            missing = triggers.missing(connection)
        except DatabaseError as exc:
            errors.append(Error(f"cannot check the audit log's triggers: {exc}", id="audit.E002"))
            continue
        if missing:
            errors.append(
                Error(
                    f"the audit log is not append-only in database '{alias}': trigger(s) {', '.join(missing)} "
                    "missing (a migration rebuilt the table or someone dropped them)",
                    hint="Run `manage.py audit install-triggers` (migrate refuses to run while this error "
                    "stands), then `manage.py audit verify`.",
                    id="audit.E001",
                )
            )
    return errors


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """audit.E003 for a negative VIGILUS_AUDIT_CHECKPOINT_EVERY, audit.E004 for each outside witness URL that
    cannot be used (the URL itself is not shown: it may hold a token)."""
    errors: list[CheckMessage] = []
    if settings.AUDIT_CHECKPOINT_EVERY < 0:
        errors.append(
            Error(
                f"VIGILUS_AUDIT_CHECKPOINT_EVERY is {settings.AUDIT_CHECKPOINT_EVERY}: it must be 0 (only the hourly "
                "checkpoint) or a positive number of entries",
                id="audit.E003",
            )
        )
    for number, url in enumerate(witness.split_urls(settings.AUDIT_WITNESS_URLS), start=1):
        if why := witness.unusable_url(url):
            errors.append(
                Error(
                    f"outside witness {number} in VIGILUS_AUDIT_WITNESS_URLS ({witness.display_name(url)}) cannot be "
                    f"used: {why}",
                    hint="Use an http(s):// endpoint that takes a POSTed JSON checkpoint, or an Apprise URL "
                    "(json://, ntfy://, syslog://, mailto://, ...).",
                    id="audit.E004",
                )
            )
    return errors
