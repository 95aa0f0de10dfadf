"""`plans show|approve|reject`, `task --plan|--continue` and `operators add --plan-first`: flags, JSON keys and
exit codes (a CommandError is exit 1), through a real Celery worker with a scripted model."""

from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from jit.models import Grant
from operators.choices import RunStatus
from operators.models import Operator, Run
from tests.fakes.llm import FakeLLMServer, ToolCall, text, tool_calls
from tests.operators.test_plans import operator_maker
from tests.operators.test_runs import settle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
PLAN_KEYS = {"number", "status", "summary", "expires_at", "decided_by", "decided_at", "decision_reason", "steps"}
STEP_KEYS = {"index", "tool", "arguments", "target", "intent", "reason", "status", "result"}


@pytest.fixture
def operator(celery_worker: str, admin_user: User, model: FakeLLMServer) -> Callable[..., Operator]:
    """Makes the Operator `fixer` (exec, strict unless told) with the shell tool; the session's worker runs it."""
    return operator_maker(admin_user, model)


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def plan_status(run_id: int) -> str:
    return json.loads(run("plans", "show", str(run_id), "--json"))["status"]


def test_operators_add_plan_first(operator) -> None:
    out = run(
        "operators", "add", "--name", "planner", "--provider", "lab", "--prompt", "Look first.",
        "--tools", SHELL, "--ceiling", "exec", "--jit", "lenient", "--plan-first",
    )  # fmt: skip
    assert out == "Added Operator planner (Exec, JIT lenient, plan first) with 1 tool(s).\n"
    assert json.loads(run("operators", "show", "planner", "--json"))["plan_first"] is True
    run("operators", "add", "--name", "doer", "--provider", "lab", "--prompt", "Just do it.")
    assert dict(Operator.objects.values_list("name", "plan_first")) == {"planner": True, "doer": False}


def test_a_plan_from_the_command_line_shown_refused_and_approved_with_a_step_left_out(
    operator, model, approver_user, viewer_user, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    commands = [f"echo {word} >> {log}" for word in ("one", "two", "three")]
    model.script(
        tool_calls(*(ToolCall(SHELL, {"command": c}) for c in commands), text="Three lines, in order."),
        text("Plan: append one, two, three."),
        text("Appended one and three."),
        text("You are welcome."),
    )
    operator()  # strict, without plan_first: `--plan` asks for plan mode

    # `task --plan --wait` returns (exit 0) once the run waits on its plan, and prints the run's JSON.
    data = json.loads(run("task", "append three lines", "--operator", "fixer", "--plan", "--wait", "--json"))
    run_id = data["id"]
    assert (data["status"], data["plan_mode"]) == ("awaiting_plan_approval", True) and not log.exists()
    assert set(data["plan"]) == PLAN_KEYS and data["plan"]["status"] == "awaiting_approval"

    shown = json.loads(run("plans", "show", str(run_id), "--json"))
    assert shown == data["plan"]  # the run JSON's `plan` object
    assert [set(step) for step in shown["steps"]] == [STEP_KEYS] * 3
    assert [(s["index"], s["arguments"]["command"], s["status"]) for s in shown["steps"]] == [
        (1, commands[0], "proposed"),
        (2, commands[1], "proposed"),
        (3, commands[2], "proposed"),
    ]
    lines = run("plans", "show", str(run_id)).splitlines()
    assert lines[0] == f"Run #{run_id}, plan 1: Awaiting approval" and lines[1] == "Plan: append one, two, three."
    assert lines[2] == f"  1. [proposed] {SHELL} (write) on shell: {commands[0]}"
    assert lines[-1].startswith("Decide within ") and lines[-1].endswith(
        f"plans approve {run_id} [--skip N,M] | reject"
    )

    # Refused, each naming what is wrong, and nothing changes.
    refusals = [
        (("task", "thanks", "--continue", str(run_id)), r"is awaiting plan approval: reply once it has finished"),
        (
            ("plans", "approve", str(run_id), "--skip", "9"),
            r"^skip: The plan has no step 9 \(its steps are 1 to 3\)\.$",
        ),
        (("plans", "approve", str(run_id), "--skip", "two"), r"^--skip: 'two' is not a step number"),
        (
            ("plans", "approve", str(run_id), "--skip", "1,2,3"),
            r"^skip: Every step is left out: reject the plan instead",
        ),
        (("plans", "reject", str(run_id)), r"the following arguments are required: --reason"),
        (("plans", "reject", str(run_id), "--reason", "  "), r"^reason: Say why the plan is rejected"),
        (
            ("plans", "approve", str(run_id), "--as", "vera"),
            r"^vera may not decide plans \(approvers and admins may\)\.$",
        ),
        (("plans", "reject", str(run_id), "--reason", "no", "--as", "vera"), r"^vera may not decide plans"),
        (("plans", "show", "999999"), r"^run: No run #999999\.$"),
    ]
    for args, problem in refusals:
        with pytest.raises(CommandError, match=problem):
            run(*args)
    assert plan_status(run_id) == "awaiting_approval" and not Grant.objects.exists() and not log.exists()

    out = run("plans", "approve", str(run_id), "--skip", "2", "--as", "bert")
    assert out == f"Run #{run_id}: plan approved, steps 1, 3 run in order; left out: 2.\n"
    settle(Run.objects.get(pk=run_id), RunStatus.finished())
    assert log.read_text() == "one\nthree\n"
    shown = json.loads(run("plans", "show", str(run_id), "--json"))
    assert (shown["status"], shown["decided_by"]) == ("applied", "bert")
    assert [s["status"] for s in shown["steps"]] == ["succeeded", "skipped", "succeeded"]
    with pytest.raises(CommandError, match=r"^run: Run #\d+'s plan is applied, not awaiting approval\.$"):
        run("plans", "approve", str(run_id))

    # Now finished, the run takes a reply: `task --continue` goes on in the same run.
    data = json.loads(run("task", "thanks", "--continue", str(run_id), "--wait", "--json"))
    assert (data["id"], data["status"], data["answer"]) == (run_id, "completed", "You are welcome.")
    assert [(t["message"], t["answer"]) for t in data["turns"]] == [
        ("append three lines", "Appended one and three."),
        ("thanks", "You are welcome."),
    ]


def test_task_continue_names_what_is_wrong() -> None:
    with pytest.raises(CommandError, match=r"^--continue: no run #999999\.$"):
        run("task", "go on", "--continue", "999999")
    with pytest.raises(CommandError, match=r"leave out --operator/--plan"):
        run("task", "go on", "--continue", "1", "--plan")
