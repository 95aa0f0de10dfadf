"""`manage.py task "TEXT" [--operator N] [--plan] [--continue RUN_ID] [--wait] [--json]`: give Vigilus a task, or
reply to a finished run."""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from operators.choices import RunStatus, TaskSource
from operators.models import Operator, Run
from operators.services import continue_run, run_json, submit_task
from vigilus.management.base import validation_message
from vigilus.services import resolve_actor

SETTLED = (*RunStatus.finished(), *RunStatus.parked())


class Command(BaseCommand):
    help = (
        "Give Vigilus a task, or reply to a finished run (--continue). With --wait, return when the run finishes or "
        "waits for a person's approval."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("text")
        parser.add_argument("--operator", help="the Operator to use (default: routed by the orchestrator)")
        parser.add_argument(
            "--plan",
            action="store_true",
            help="plan first: other calls than read become a plan a person approves as a whole (`plans`)",
        )
        parser.add_argument(
            "--continue",
            dest="continue_run",
            type=int,
            metavar="RUN_ID",
            help="reply to this finished run: its Operator goes on with the whole conversation",
        )
        parser.add_argument("--wait", action="store_true", help="wait until it finishes or waits for approval")
        parser.add_argument("--timeout", type=float, default=600, help="seconds --wait waits at most (default 600)")
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            help="who gives the task, and so started the run (default: the first admin)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = self._follow_up(options) if options["continue_run"] is not None else self._submit(options)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None
        if options["wait"]:
            deadline = time.monotonic() + options["timeout"]
            while time.monotonic() < deadline:
                run.refresh_from_db()
                if run.status in SETTLED:
                    break
                time.sleep(0.2)
        run = Run.objects.get(pk=run.pk)
        if options["json"]:
            self.stdout.write(json.dumps(run_json(run), indent=2, default=str))
        else:
            self.stdout.write(
                f"Run #{run.pk}: {run.get_status_display()}" + (f" ({run.operator_name})" if run.operator_name else "")
            )
            if run.answer:
                self.stdout.write(run.answer)
            if run.status == RunStatus.AWAITING_PLAN_APPROVAL:
                self.stdout.write(f"Its plan waits for a person: see `vigilus plans show {run.pk}`.")
        if options["wait"] and run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise CommandError(f"run #{run.pk} {run.status}: {run.error}")
        if options["wait"] and run.status not in SETTLED:
            raise CommandError(f"run #{run.pk} is still {run.status} after {options['timeout']:.0f} s")

    def _submit(self, options: dict[str, Any]) -> Run:
        operator = None
        if options["operator"]:
            operator = Operator.objects.filter(name=options["operator"]).first()
            if operator is None:
                raise CommandError(f"--operator: no Operator named {options['operator']!r}.")
        return submit_task(
            options["text"],
            source=TaskSource.COMMAND,
            operator=operator,
            started_by=resolve_actor(options["as_user"]),
            plan_mode=options["plan"],
        )

    def _follow_up(self, options: dict[str, Any]) -> Run:
        if options["operator"] or options["plan"]:
            raise CommandError("--continue goes on with the run's own Operator and mode: leave out --operator/--plan.")
        run = Run.objects.filter(pk=options["continue_run"]).first()
        if run is None:
            raise CommandError(f"--continue: no run #{options['continue_run']}.")
        return continue_run(
            run, options["text"], source=TaskSource.COMMAND, started_by=resolve_actor(options["as_user"])
        )
