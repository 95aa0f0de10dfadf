"""Plan mode through a real Celery worker on Redis, with a scripted model on real HTTP: a plan is drafted (read
calls run, other calls become steps), a person decides it as a whole, and exactly the approved steps run, in order,
each under its own single-use grant."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEntry
from jit.models import AccessRequest, Grant
from jit.services import arguments_digest
from operators import plans
from operators.choices import Ceiling, OperatorJITMode, RunStatus
from operators.models import Operator, Plan, PlanStep, Run
from operators.services import continue_run, run_json, submit_task
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer, ToolCall, text, tool_call, tool_calls
from tests.operators.test_runs import settle
from tools.choices import ReviewState
from tools.models import Tool
from tools.services import definition_hash, discover_all

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
# Where a run stops for a person, or ends: `task --wait` returns on these too.
STOPPED = (*RunStatus.finished(), *RunStatus.parked())


def operator_maker(actor: User, model: FakeLLMServer) -> Callable[..., Operator]:
    """Makes the Operator `fixer` (exec ceiling, strict unless told) with the shell tool, on a provider `lab`
    pointed at `model`."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=actor, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )

    def make(ceiling: str = Ceiling.EXEC, jit_mode: str = OperatorJITMode.STRICT, **fields: Any) -> Operator:
        op = Operator.objects.create(name="fixer", provider=provider, ceiling=ceiling, jit_mode=jit_mode, **fields)
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make


@pytest.fixture
def operator(celery_worker: str, admin_user: User, model: FakeLLMServer) -> Callable[..., Operator]:
    """The session's worker runs the runs of the Operators it makes."""
    return operator_maker(admin_user, model)


def append(word: str, log: Path, **extra: Any) -> dict[str, Any]:
    """The shell tool's arguments for a write: one line appended to `log`."""
    return {"command": f"echo {word} >> {log}", **extra}


def tool_messages(model: FakeLLMServer) -> dict[str, str]:
    """What the model was told about each of its calls, by call id (as the last request it got carried them)."""
    messages = model.chat_requests[-1].body["messages"]
    return {m["tool_call_id"]: m["content"] for m in messages if m["role"] == "tool"}


def plan_of(run: Run) -> dict[str, Any]:
    return run_json(Run.objects.get(pk=run.pk))["plan"]


def events(run: Run, event: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(run_id=run.pk, event=event).order_by("sequence"))


def test_an_approved_plan_runs_the_steps_left_in_in_order_exactly_as_shown(
    operator, model, approver_user, tmp_path
) -> None:
    """A strict Operator without plan_first, given a task in plan mode: one decision instead of three prompts."""
    log, notes = tmp_path / "log", tmp_path / "notes"
    notes.write_text("three lines to append\n")
    one, two, three = (append(word, log) for word in ("one", "two", "three"))
    model.script(
        tool_call(SHELL, {"command": f"cat {notes}"}, id="r1"),
        tool_calls(ToolCall(SHELL, one, id="s1"), ToolCall(SHELL, two, id="s2"), text="First one and two."),
        tool_call(SHELL, three, id="s3", text="Then three."),
        text("Plan: append one, two and three."),
        text("Applied: one and three; two was left out."),
    )
    run = settle(submit_task("append the lines", operator=operator(), plan_mode=True), STOPPED)

    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL and not log.exists()  # nothing ran before approval
    data = run_json(run)
    assert data["plan_mode"] is True and data["status"] == "awaiting_plan_approval"
    plan = data["plan"]
    assert (plan["status"], plan["summary"], plan["decided_by"]) == (
        "awaiting_approval",
        "Plan: append one, two and three.",
        None,
    )
    shown = [
        (s["index"], s["tool"], s["arguments"], s["target"], s["intent"], s["reason"], s["status"])
        for s in plan["steps"]
    ]
    assert shown == [
        (1, SHELL, one, "shell", "write", "First one and two.", "proposed"),
        (2, SHELL, two, "shell", "write", "First one and two.", "proposed"),
        (3, SHELL, three, "shell", "write", "Then three.", "proposed"),
    ]
    # The read call ran while planning; the writes were recorded, and the model was told so.
    assert [(c["decision"], c["ok"]) for c in data["tool_calls"]] == [("allowed", True), *[("planned", True)] * 3]
    told = tool_messages(model)
    assert "three lines to append" in told["r1"]
    assert told["s1"].startswith("planned as step 1: not run") and told["s3"].startswith("planned as step 3: not run")
    assert "Plan mode" in model.chat_requests[0].body["messages"][0]["content"]
    # One decision for the whole plan: no per-call request, no grant until it is approved.
    assert not AccessRequest.objects.filter(run_id=run.pk).exists() and not Grant.objects.filter(run_id=run.pk).exists()
    assert len(events(run, "plan.proposed")) == 1

    plans.approve(run.pk, actor=approver_user, skip=[2])
    run = settle(run, RunStatus.finished())

    assert (run.status, run.answer) == (RunStatus.COMPLETED, "Applied: one and three; two was left out.")
    assert log.read_text() == "one\nthree\n"  # steps 1 and 3, in that order; step 2 never ran
    plan = plan_of(run)
    assert (plan["status"], plan["decided_by"]) == ("applied", "bert")
    assert [s["status"] for s in plan["steps"]] == ["succeeded", "skipped", "succeeded"]
    assert "exit code 0" in plan["steps"][0]["result"] and plan["steps"][1]["result"] == ""
    results = model.chat_requests[-1].body["messages"][-1]
    assert results["role"] == "user" and "Step 2: shell__run_command on shell: skipped" in results["content"]

    steps = list(PlanStep.objects.filter(plan__run=run).order_by("index"))
    ran = [steps[0], steps[2]]
    # Each approved step ran exactly as shown, under its own grant.
    applied = AuditEntry.objects.filter(run_id=run.pk, event="tool_call.decision", decision="approved")
    assert [(e.arguments, e.grant_id) for e in applied.order_by("sequence")] == [(s.arguments, s.grant_id) for s in ran]
    grants = {g.pk: g for g in Grant.objects.filter(run_id=run.pk)}
    assert set(grants) == {steps[0].grant_id, steps[2].grant_id} and steps[1].grant_id is None
    for step in ran:
        grant = grants[step.grant_id]
        assert (grant.max_uses, grant.uses, grant.granted_by.username, grant.tool) == (1, 1, "bert", SHELL)
        assert grant.arguments_digest == arguments_digest(step.arguments)
    # One audit entry for the decision, naming the steps and their grants.
    (approved,) = events(run, "plan.approved")
    assert (approved.actor, approved.decision) == ("bert", "approved")
    assert [(s["index"], s["grant"]) for s in approved.details["steps"]] == [
        (1, steps[0].grant_id),
        (3, steps[2].grant_id),
    ]
    assert approved.details["skipped"] == [2]
    assert len(events(run, "plan.applied")) == 1
    assert not AccessRequest.objects.filter(run_id=run.pk).exists()  # the apply raised no request either


def test_the_first_failing_step_stops_the_rest(operator, model, approver_user, tmp_path) -> None:
    """A step the shell tool reports as an error (its working directory is gone): later steps are not run.
    (A command that exits non-zero is not an error for the shell tool: it reports the exit code.)"""
    log = tmp_path / "log"
    model.script(
        tool_calls(
            ToolCall(SHELL, append("a", log), id="s1"),
            ToolCall(SHELL, append("b", log, cwd=str(tmp_path / "gone")), id="s2"),
            ToolCall(SHELL, append("c", log), id="s3"),
        ),
        text("Plan: three lines."),
        text("Step 2 failed; c was not appended."),
    )
    run = settle(submit_task("append three lines", operator=operator(plan_first=True)), STOPPED)
    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL

    plans.approve(run.pk, actor=approver_user)
    run = settle(run, RunStatus.finished())

    assert log.read_text() == "a\n"
    plan = plan_of(run)
    assert plan["status"] == "failed"
    assert [s["status"] for s in plan["steps"]] == ["succeeded", "failed", "not_run"]
    assert "does not exist" in plan["steps"][1]["result"] and plan["steps"][2]["result"] == ""
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "Step 2 failed; c was not appended.")
    results = model.chat_requests[-1].body["messages"][-1]["content"]
    assert "stopped at its first failure" in results and "Step 3: shell__run_command on shell: not run" in results
    (failed,) = events(run, "plan.failed")
    assert [s["status"] for s in failed.details["steps"]] == ["succeeded", "failed", "not_run"]


def test_a_rejected_plan_runs_nothing_and_ends_the_run_even_for_a_lenient_operator(
    operator, model, approver_user, tmp_path
) -> None:
    canary = tmp_path / "canary"
    model.script(tool_call(SHELL, {"command": f"touch {canary}"}), text("Plan: touch the canary."))
    lenient = operator(jit_mode="lenient", plan_first=True)
    run = settle(submit_task("touch the canary", operator=lenient), STOPPED)

    # Plan mode is a person's choice to look first: a lenient Operator stops for the plan too.
    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL and run.plan_mode and not canary.exists()
    assert not Grant.objects.filter(run_id=run.pk).exists()
    before = (run.messages, run.turns)
    with pytest.raises(ValidationError, match="awaiting plan approval: reply once it has finished"):
        continue_run(run, "also touch another one")
    run.refresh_from_db()
    assert (run.status, (run.messages, run.turns)) == (RunStatus.AWAITING_PLAN_APPROVAL, before)

    plans.reject(run.pk, actor=approver_user, reason="not during the backup window")
    run = settle(run, RunStatus.finished())

    assert run.status == RunStatus.CANCELLED and not canary.exists()
    assert run.error == "the plan was rejected by bert: not during the backup window. Nothing in it was run."
    plan = plan_of(run)
    assert (plan["status"], plan["decided_by"], plan["decision_reason"]) == (
        "rejected",
        "bert",
        "not during the backup window",
    )
    assert [s["status"] for s in plan["steps"]] == ["not_run"]
    assert len(model.chat_requests) == 2 and not Grant.objects.filter(run_id=run.pk).exists()
    (rejected,) = events(run, "plan.rejected")
    assert (rejected.actor, rejected.reason) == ("bert", "not during the backup window")
    with pytest.raises(plans.PlanDecisionConflict):
        plans.approve(run.pk, actor=approver_user)


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("definition", f"tool {SHELL} changed its definition since the plan was approved: step not run"),
        ("withdrawn", f"tool {SHELL} changed its definition and awaits a person's review"),
    ],
    ids=["definition-changed", "withdrawn-for-review"],
)
def test_a_tool_changed_between_plan_and_apply_refuses_the_step(
    operator, model, approver_user, tmp_path, change, refusal
) -> None:
    log = tmp_path / "log"
    model.script(
        tool_calls(ToolCall(SHELL, append("a", log), id="s1"), ToolCall(SHELL, append("b", log), id="s2")),
        text("Plan: two lines."),
        text("Nothing was applied."),
    )
    run = settle(submit_task("append two lines", operator=operator(plan_first=True)), STOPPED)
    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL

    tool = Tool.objects.get(qualified_name=SHELL)
    if change == "definition":  # what discovery records when the server now describes the tool otherwise
        tool.description += " It now also uploads the output."
        tool.definition_hash = definition_hash(tool.name, tool.description, tool.input_schema, tool.annotations)
        tool.save(update_fields=["description", "definition_hash"])
    else:  # what discovery does to a changed tool a person reviewed: withdrawn until reviewed again
        tool.review_state = ReviewState.CHANGED
        tool.save(update_fields=["review_state"])
    plans.approve(run.pk, actor=approver_user)
    run = settle(run, RunStatus.finished())

    assert not log.exists()
    plan = plan_of(run)
    assert plan["status"] == "failed"
    assert [s["status"] for s in plan["steps"]] == ["failed", "not_run"]
    assert refusal in plan["steps"][0]["result"]
    assert refusal in model.chat_requests[-1].body["messages"][-1]["content"]
    assert not AuditEntry.objects.filter(run_id=run.pk, event="tool_call.outcome", outcome="succeeded").exists()


def test_a_plan_nobody_decides_in_time_counts_as_rejected(operator, model, approver_user, tmp_path) -> None:
    canary = tmp_path / "canary"
    model.script(tool_call(SHELL, {"command": f"touch {canary}"}), text("Plan: touch the canary."))
    run = settle(submit_task("touch the canary", operator=operator(plan_first=True)), STOPPED)
    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL
    assert plans.expire_plans() == 0  # not yet

    Plan.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert plans.expire_plans() == 1
    run = settle(run, RunStatus.finished())

    assert run.status == RunStatus.CANCELLED and not canary.exists()
    assert run.error == "the plan was not approved: expired: nobody decided in time. Nothing in it was run."
    plan = plan_of(run)
    assert (plan["status"], plan["decided_by"]) == ("rejected", None)
    assert [s["status"] for s in plan["steps"]] == ["not_run"]
    assert len(events(run, "plan.expired")) == 1 and len(model.chat_requests) == 2
    with pytest.raises(plans.PlanDecisionConflict):
        plans.approve(run.pk, actor=approver_user)
    assert not Grant.objects.filter(run_id=run.pk).exists()


def test_a_step_above_the_ceiling_is_denied_while_planning_not_planned(operator, model, tmp_path) -> None:
    log = tmp_path / "log"
    model.script(
        tool_calls(
            ToolCall(SHELL, append("a", log), id="s1"),
            ToolCall(SHELL, {"command": "systemctl restart nginx"}, id="s2"),
        ),
        text("Plan: append a line; I may not restart nginx."),
    )
    run = settle(
        submit_task("append a line, restart nginx", operator=operator(ceiling="write", plan_first=True)), STOPPED
    )

    assert run.status == RunStatus.AWAITING_PLAN_APPROVAL
    plan = plan_of(run)
    assert [(s["index"], s["arguments"]) for s in plan["steps"]] == [(1, append("a", log))]
    assert [c["decision"] for c in run_json(run)["tool_calls"]] == ["planned", "denied"]
    assert tool_messages(model)["s2"] == "denied: Exec is above fixer's ceiling (Write)"
