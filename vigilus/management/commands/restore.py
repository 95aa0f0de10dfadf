"""`vigilus restore FILE`: put a backup back into an empty data directory (and an empty database)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from vigilus.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = (
        "Restore a backup made by `vigilus backup` into an empty data directory and, with DATABASE_URL, an empty "
        "PostgreSQL database. It never overwrites anything: a data directory or database that is not empty is refused."
    )
    # No system check may open the database first: on SQLite that would create the file the backup goes into.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="the archive `vigilus backup` wrote")

    own_process = False

    def run_from_argv(self, argv: list[str]) -> None:
        # `vigilus restore FILE`: this process exists for the restore (call_command runs inside another one).
        self.own_process = True
        super().run_from_argv(argv)

    def handle(self, *args: Any, file: str, **options: Any) -> None:
        try:
            restored = restore_backup(Path(file), own_process=self.own_process)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        manifest = restored.manifest
        head = manifest.get("audit_chain_head")
        self.stdout.write(
            f"Restored the backup of {manifest['created_at']} (Vigilus {manifest['vigilus_version']}, "
            f"{manifest['database']}, audit log through #{head['sequence'] if head else 0}) into {settings.DATA_DIR}: "
            f"{', '.join([restored.database, *restored.files])}."
        )
        if restored.keys_from_environment:
            self.stdout.write(
                self.style.WARNING(
                    f"The backed-up instance had {', '.join(restored.keys_from_environment)} in its environment: set "
                    "the same values here before starting Vigilus."
                )
            )
        self.stdout.write(
            "Start Vigilus (`vigilus run`; it applies any pending migrations); `vigilus audit verify` "
            "checks the restored audit log."
        )
