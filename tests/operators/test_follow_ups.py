"""Replies to a finished run, through a real Celery worker on Redis with a scripted model on real HTTP: the same
Operator goes on with the whole conversation, in the same run; a run still working or waiting takes no reply."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from operators.choices import RunStatus, TaskSource
from operators.models import Operator, Run
from operators.services import continue_run, run_json, submit_task
from tests.conftest import wait_for
from tests.fakes.llm import FakeLLMServer, Usage, slow, text, tool_call
from tests.operators.test_plans import operator_maker
from tests.operators.test_runs import settle

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
STOPPED = (*RunStatus.finished(), *RunStatus.parked())


@pytest.fixture
def operator(celery_worker: str, admin_user: User, model: FakeLLMServer) -> Callable[..., Operator]:
    """Makes the Operator `fixer` (exec, strict unless told) with the shell tool; the session's worker runs it."""
    return operator_maker(admin_user, model)


def test_a_follow_up_goes_on_with_the_whole_conversation_in_the_same_run(operator, model, admin_user) -> None:
    model.script(
        tool_call(SHELL, {"command": "echo disk-report-7"}, id="c1", text="Checking the disks."),
        text("The disks are fine."),
        tool_call(SHELL, {"command": "echo memory-report-3"}, id="c2"),
        text("Memory is fine too."),
    )
    run = settle(submit_task("check the disks", operator=operator(ceiling="read_only")), RunStatus.finished())
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "The disks are fine.")

    continued = continue_run(run, "now check the memory", source=TaskSource.COMMAND, started_by=admin_user)
    assert (continued.pk, continued.status) == (run.pk, RunStatus.RUNNING)
    run = settle(run, RunStatus.finished())

    # The model got the whole conversation: the first task, its call and result, its answer, then the reply.
    sent = model.chat_requests[2].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["content"] == "check the disks" and "disk-report-7" in sent[3]["content"]
    assert sent[4]["content"] == "The disks are fine." and sent[5]["content"] == "now check the memory"
    # The new steps are appended to the same run, whose JSON lists both messages, each with its answer.
    assert Run.objects.count() == 1
    data = run_json(run)
    assert (data["id"], data["status"], data["answer"]) == (run.pk, "completed", "Memory is fine too.")
    assert data["turns"] == [
        {"message": "check the disks", "answer": "The disks are fine.", "status": "completed", "by": "dashboard"},
        {"message": "now check the memory", "answer": "Memory is fine too.", "status": "completed", "by": "alice"},
    ]
    assert [c["arguments"]["command"] for c in data["tool_calls"]] == ["echo disk-report-7", "echo memory-report-3"]
    assert run.steps == 4 and len(model.chat_requests) == 4
    # Audited like a task: who replied, to which run, which turn.
    (entry,) = AuditEntry.objects.filter(event="run.continued")
    assert (entry.actor, entry.run_id, entry.target) == ("alice", run.pk, "fixer")
    assert (entry.details["source"], entry.details["turn"]) == ("command", 2)


def test_a_run_still_working_or_waiting_for_a_decision_takes_no_reply(operator, model, tmp_path) -> None:
    canary = tmp_path / "canary"
    model.script(slow(3, tool_call(SHELL, {"command": f"touch {canary}"})), text("touched"))
    run = submit_task("touch the canary", operator=operator())
    wait_for(lambda: len(model.chat_requests) == 1, what="the model to be asked")  # it answers in 3 s

    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    with pytest.raises(CommandError, match=rf"^text: Run #{run.pk} is running: reply once it has finished\.$"):
        call_command("task", "--continue", str(run.pk), "and touch another one")

    run = settle(run, STOPPED)
    assert run.status == RunStatus.AWAITING_APPROVAL
    before = (run.messages, run.turns, run.steps)
    with pytest.raises(ValidationError, match="is awaiting approval: reply once it has finished"):
        continue_run(run, "and touch another one")
    run.refresh_from_db()
    assert (run.status, (run.messages, run.turns, run.steps)) == (RunStatus.AWAITING_APPROVAL, before)
    assert not AuditEntry.objects.filter(event="run.continued").exists() and len(model.chat_requests) == 1


@pytest.mark.parametrize(
    ("budget", "usage", "stop"),
    [
        ({"token_budget": 100}, Usage(40, 20), "stopped: used 120 tokens, over the budget of 100"),
        (
            {"cost_budget": Decimal("0.02"), "model": "gpt-4o-mini", "token_budget": 0},
            Usage(100_000, 10),  # $0.015 a step, as litellm prices gpt-4o-mini
            "over the budget of $0.0200",
        ),
    ],
    ids=["tokens", "cost"],
)
def test_budgets_count_across_the_whole_conversation(operator, model, budget, usage, stop) -> None:
    """Each turn alone stays under the budget; the conversation does not, and the follow-up stops."""
    model.script(
        text("first answer", usage=usage),
        tool_call(SHELL, {"command": "echo again"}, usage=usage),
        text("never asked for"),
    )
    run = settle(submit_task("first", operator=operator(ceiling="read_only", **budget)), RunStatus.finished())
    assert run.status == RunStatus.COMPLETED

    continue_run(run, "second")
    run = settle(run, RunStatus.finished())

    assert run.status == RunStatus.FAILED and stop in run.error, run.error
    assert len(model.chat_requests) == 2  # the follow-up's second model step was never asked for
    assert [t["status"] for t in run_json(run)["turns"]] == ["completed", "failed"]
