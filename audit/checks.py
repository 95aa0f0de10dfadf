"""System check: the append-only triggers are in place once their migration has run."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error
from django.db import DatabaseError, connections
from django.db.migrations.recorder import MigrationRecorder

from audit import triggers

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
