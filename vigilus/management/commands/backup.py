"""`vigilus backup [--output FILE]`: one archive of the database, the key files, mcp.json and the witness file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from vigilus.backup import BackupError, create_backup


class Command(BaseCommand):
    help = (
        "Write one archive (mode 0600: it holds the key files) of the database, taken while Vigilus runs, the "
        "key files, mcp.json, the audit witness file and a manifest. "
        "Default: <data dir>/backups/vigilus-backup-TIME.tar.gz."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", metavar="FILE", help="where to write the archive (never overwritten)")
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print the manifest as JSON for scripts"
        )

    def handle(self, *args: Any, output: str | None, as_json: bool, **options: Any) -> None:
        try:
            backup = create_backup(Path(output) if output else None)
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        if as_json:
            self.stdout.write(json.dumps({"path": str(backup.path), **backup.manifest}, indent=2))
            return
        head = backup.manifest["audit_chain_head"]
        through = head["sequence"] if head else 0
        self.stdout.write(
            f"Backup written to {backup.path} (mode 0600: it holds the key files; keep it as safe as the data "
            f"directory). Database: {backup.manifest['database']}, audit log through #{through}."
        )
        if backup.keys_from_environment:
            self.stdout.write(
                self.style.WARNING(
                    f"Not in it: {', '.join(backup.keys_from_environment)}, given in the environment. Keep those "
                    "values with the backup: a restored instance needs them."
                )
            )
