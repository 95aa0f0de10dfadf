"""`manage.py audit verify|checkpoint|export`: check, sign and export the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import is_naive, make_aware

from audit import services
from audit.choices import Finding
from audit.witness import WitnessError
from vigilus.management.base import AreaCommand


class Command(AreaCommand):
    help = "Verify the audit log's hash chain, sign a checkpoint of it, or export it."

    def add_subcommands(self) -> None:
        self.subcommand(
            "verify",
            "Check genesis, every link and hash, sequence gaps, and the tail against the chain head, the signed "
            "checkpoints in the database and those witnessed outside it (the witness file). Exits 1 naming every "
            "problem found.",
            json_output=True,
        )
        self.subcommand(
            "checkpoint",
            "Sign the newest entry's sequence and hash with the instance key, and witness it outside the database "
            "(the witness file, and the outside witnesses configured).",
            json_output=True,
        )
        self.subcommand(
            "install-triggers",
            "Put back the database triggers that make the log append-only (after the audit.E001 check says one "
            "is missing), then say which were missing.",
        )
        export = self.subcommand("export", "Write the log (oldest first) as JSON Lines or CSV.")
        export.add_argument("--format", dest="fmt", choices=["jsonl", "csv"], default="jsonl")
        export.add_argument(
            "--since", metavar="ISO", help="only entries at or after this time (ISO 8601; UTC if no zone)"
        )
        export.add_argument("--output", metavar="FILE", help="write to FILE instead of standard output")

    def handle_verify(self, *, json: bool, **options: Any) -> None:
        report = services.verify_log()
        if json:
            self.print_json(report.as_dict())
        else:
            if report.ok:
                self.stdout.write(
                    f"OK: {report.entries} entries, chain intact through #{report.last_sequence} "
                    f"({report.checkpoints} checkpoints, latest at #{report.latest_checkpoint}; "
                    f"{witness_summary(report.witness)}) in {report.seconds:.2f}s"
                )
            for note in report.notes:
                self.stdout.write(f"Note: {note}")
            for problem in report.problems:
                self.stderr.write(f"{Finding(problem.kind).label}: {problem}")
        if not report.ok:
            more = f" (and {len(report.problems) - 1} more problems)" if len(report.problems) > 1 else ""
            raise CommandError(f"audit log verification failed at {report.problem}{more}", returncode=1)

    def handle_checkpoint(self, *, json: bool, **options: Any) -> None:
        try:
            checkpoint = services.take_checkpoint()
        except WitnessError as exc:
            raise CommandError(str(exc)) from None
        if checkpoint is None:
            raise CommandError("the audit log is empty: there is nothing to sign")
        if json:
            fields = ("sequence", "hash", "created_at", "key_id", "witnessed")
            self.print_json({name: getattr(checkpoint, name) for name in fields})
            return
        self.stdout.write(
            f"Checkpoint at #{checkpoint.sequence} ({checkpoint.hash}), key {checkpoint.key_id}, witnessed in "
            f"{settings.AUDIT_WITNESS_FILE}"
        )

    def handle_install_triggers(self, **options: Any) -> None:
        missing = services.install_triggers(actor=self.actor(options))
        self.stdout.write(f"Put back: {', '.join(missing)}." if missing else "Every trigger was in place.")
        self.stdout.write("Run `manage.py audit verify`: rows changed while they were missing show up there.")

    def handle_export(self, *, fmt: str, since: str | None, output: str | None, **options: Any) -> None:
        lines = services.export_lines(fmt, services.entries_since(parse_since(since)))
        if output is None:
            for line in lines:
                self.stdout.write(line, ending="")
            return
        with open(output, "w", encoding="utf-8", newline="") as file:
            file.writelines(lines)
        self.stderr.write(f"Exported to {output}")


def witness_summary(found: services.WitnessReport | None) -> str:
    if found is None or not found.present:
        return "no witness file"
    return f"{found.checkpoints} witnessed outside the database, latest at #{found.latest}"


def parse_since(value: str | None) -> datetime | None:
    """An aware datetime from ISO 8601 (a date alone means its midnight; no zone means UTC)."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None and (day := parse_date(value)) is not None:
            parsed = datetime.combine(day, time.min)
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(f"--since {value!r} is not an ISO 8601 date or date and time")
    return make_aware(parsed, UTC) if is_naive(parsed) else parsed
