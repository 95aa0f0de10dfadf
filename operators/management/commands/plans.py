"""`manage.py plans show|approve|reject RUN_ID`: decide a run's plan as a whole, for scripted use."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from operators import plans
from operators.choices import PlanStatus
from vigilus.management.base import AreaCommand


def parse_steps(text: str) -> list[int]:
    """`2,5` -> [2, 5]; anything else is a CommandError naming what is wrong."""
    indexes = []
    for part in (p.strip() for p in text.split(",")):
        if not part.isdigit() or int(part) < 1:
            raise CommandError(f"--skip: {part!r} is not a step number (give step numbers like 2,5).")
        indexes.append(int(part))
    return indexes


class Command(AreaCommand):
    help = "Show, approve (leaving out steps) or reject the plan a run in plan mode waits on."

    def add_subcommands(self) -> None:
        show = self.subcommand("show", "A run's plan, every step as it would run.", json_output=True)
        show.add_argument("run_id", type=int)
        approve = self.subcommand("approve", "Approve the plan: its steps run in order, each exactly as shown.")
        approve.add_argument("run_id", type=int)
        approve.add_argument("--skip", default="", metavar="N,M", help="step numbers to leave out, e.g. 2,5")
        reject = self.subcommand("reject", "Reject the plan: nothing in it runs, and the run ends.")
        reject.add_argument("run_id", type=int)
        reject.add_argument("--reason", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            super().handle(*args, **options)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None

    def handle_show(self, *, run_id: int, json: bool, **options: Any) -> None:
        plans.expire_plans()
        plan = plans.pending_plan(run_id)
        shown = plans.plan_json(plan)
        if json:
            self.print_json(shown)
            return
        self.stdout.write(f"Run #{run_id}, plan {plan.number}: {plan.get_status_display()}")
        if plan.summary:
            self.stdout.write(plan.summary)
        for step in plan.steps.all():
            what = step.command_line or step.arguments
            self.stdout.write(
                f"{step.index:>3}. [{step.get_status_display().lower()}] {step.tool} ({step.intent}) "
                f"on {step.target or '-'}: {what}"
            )
        if plan.status == PlanStatus.AWAITING_APPROVAL:
            self.stdout.write(f"Decide within {plan.time_left}: plans approve {run_id} [--skip N,M] | reject")

    def handle_approve(self, *, run_id: int, skip: str, **options: Any) -> None:
        skipped = parse_steps(skip) if skip.strip() else []
        plan = plans.approve(run_id, actor=self.actor(options), skip=skipped)
        approved = [s.index for s in plan.steps.all() if s.index not in skipped]
        left_out = f"; left out: {', '.join(map(str, skipped))}" if skipped else ""
        self.stdout.write(
            f"Run #{run_id}: plan approved, steps {', '.join(map(str, approved))} run in order{left_out}."
        )

    def handle_reject(self, *, run_id: int, reason: str, **options: Any) -> None:
        plans.reject(run_id, actor=self.actor(options), reason=reason)
        self.stdout.write(f"Run #{run_id}: plan rejected; nothing in it runs.")
