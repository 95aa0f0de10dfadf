"""`manage.py schedules add|list|pause|resume|remove`: tasks submitted on a cron schedule."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from operators.entrypoints import add_schedule, remove_schedule
from operators.management.base import EntryPointCommand
from operators.models import Operator, Schedule


class Command(EntryPointCommand):
    model = Schedule
    help = "Schedules: a task for an Operator on a cron expression (or hourly, nightly, daily, weekly)."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Add a schedule.")
        add.add_argument("--name", required=True)
        add.add_argument("--operator", required=True)
        add.add_argument("--cron", required=True, help="five cron fields, or hourly / nightly / daily / weekly")
        add.add_argument("--task", required=True)
        self.subcommand("list", "List schedules.", json_output=True)
        self.add_pause_and_resume("kept, never fired")
        remove = self.subcommand("remove", "Remove a schedule.")
        remove.add_argument("name")

    def handle_add(self, *, name: str, operator: str, cron: str, task: str, **options: Any) -> None:
        op = Operator.objects.filter(name=operator).first()
        if op is None:
            raise CommandError(f"--operator: no Operator named {operator!r}.")
        schedule = add_schedule(name=name, operator=op, cron=cron, task=task, actor=self.actor(options))
        self.stdout.write(f"Added schedule {schedule.name}: {schedule.cron} -> {op.name}.")

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [
            {
                "name": s.name,
                "operator": s.operator.name,
                "cron": s.cron,
                "task": s.task,
                "enabled": s.enabled,
                "last_run": s.last_run_id,
            }
            for s in Schedule.objects.select_related("operator")
        ]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            self.stdout.write(f"{row['name']:<20} {row['cron']:<16} {row['operator']:<16} {row['task'][:50]}")

    def handle_remove(self, *, name: str, **options: Any) -> None:
        remove_schedule(self.named(name), actor=self.actor(options))
        self.stdout.write(f"Removed schedule {name}.")
