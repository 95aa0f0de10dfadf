"""`manage.py runs list|show|cancel`: runs and their transcripts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from operators import agent
from operators.models import Run
from operators.services import run_json
from vigilus.management.base import AreaCommand


class Command(AreaCommand):
    help = "List runs, show one, or cancel one."

    def add_subcommands(self) -> None:
        listing = self.subcommand("list", "The latest runs.", json_output=True)
        listing.add_argument("--limit", type=int, default=50)
        listing.add_argument("--status")
        show = self.subcommand("show", "One run with its tool calls.", json_output=True)
        show.add_argument("id", type=int)
        cancel = self.subcommand("cancel", "Stop a run at its next step.")
        cancel.add_argument("id", type=int)

    def _run(self, run_id: int) -> Run:
        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError(f"No run #{run_id}.")
        return run

    def handle_list(self, *, json: bool, limit: int, status: str | None, **options: Any) -> None:
        runs = Run.objects.all()
        if status:
            runs = runs.filter(status=status)
        runs = list(runs.select_related("started_by").prefetch_related("tool_calls")[:limit])
        if json:
            self.print_json([run_json(r) for r in runs])
            return
        for run in runs:
            self.stdout.write(f"#{run.pk:<5} {run.status:<18} {run.operator_name or '-':<16} {run.task[:60]}")

    def handle_show(self, *, id: int, json: bool, **options: Any) -> None:
        data = run_json(self._run(id))
        if json:
            self.print_json(data)
            return
        for key in ("id", "status", "operator", "routing_reason", "answer", "error"):
            self.stdout.write(f"{key}: {data[key]}")
        for call in data["tool_calls"]:
            self.stdout.write(f"  {call['tool']} ({call['intent']}): {call['decision']}")

    def handle_cancel(self, *, id: int, **options: Any) -> None:
        agent.cancel(self._run(id), actor=self.actor(options))
        self.stdout.write(f"Run #{id} will stop at its next step.")
