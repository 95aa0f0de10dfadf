"""`manage.py task "TEXT" [--operator N] [--wait] [--json]`: give Vigilus a task."""

from __future__ import annotations

import json
import time
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from operators.choices import RunStatus, TaskSource
from operators.models import Operator, Run
from operators.services import run_json, submit_task
from vigilus.management.base import validation_message
from vigilus.services import resolve_actor

SETTLED = (*RunStatus.finished(), RunStatus.AWAITING_APPROVAL)


class Command(BaseCommand):
    help = "Give Vigilus a task. With --wait, return when the run finishes or parks for approval."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("text")
        parser.add_argument("--operator", help="the Operator to use (default: routed by the orchestrator)")
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
        operator = None
        if options["operator"]:
            operator = Operator.objects.filter(name=options["operator"]).first()
            if operator is None:
                raise CommandError(f"--operator: no Operator named {options['operator']!r}.")
        try:
            run = submit_task(
                options["text"],
                source=TaskSource.COMMAND,
                operator=operator,
                started_by=resolve_actor(options["as_user"]),
            )
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
        if options["wait"] and run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            raise CommandError(f"run #{run.pk} {run.status}: {run.error}")
        if options["wait"] and run.status not in SETTLED:
            raise CommandError(f"run #{run.pk} is still {run.status} after {options['timeout']:.0f} s")
