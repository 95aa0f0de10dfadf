"""Plans and replies in the dashboard: a plan decided on its run's page (Approve with steps left out, Reject with a
reason), listed on the Approvals page, pushed live; a reply to a finished run. The runs and plans are built in the
database as the agent leaves them: no worker or model is needed to show and decide them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jit.models import Grant
from operators import live, plans
from operators.choices import CallStatus, PlanStatus, PlanStepStatus, RunStatus
from operators.models import Operator, Plan, PlanStep, Run, Step, ToolCall
from operators.tasks import advance_run
from providers.services import create_provider
from vigilus.celery import app as celery_app
from vigilus.services import update_site_settings

pytestmark = pytest.mark.django_db

SHELL = "shell__run_command"
COMMANDS = ("apt-get update", "apt-get upgrade -y", "systemctl restart nginx.service")


@pytest.fixture
def woken_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Runs a decision or a reply would wake through Celery: recorded, not sent (no worker may take them); other
    tasks (a plan's notification) are dropped."""
    woken: list[int] = []

    def send_task(name: str, args: tuple = (), kwargs: dict | None = None, **options: object) -> None:
        if name == advance_run.name:
            woken.append(args[0])

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return woken


@pytest.fixture
def fixer(admin_user: User) -> Operator:
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url="http://127.0.0.1:9/v1", default_model="m"
    )
    return Operator.objects.create(name="fixer", provider=provider, ceiling="exec", jit_mode="strict", plan_first=True)


def planning_run(operator: Operator, *, started_by: User | None = None) -> Run:
    """A run in plan mode whose model asked for three exec calls, recorded as the steps of a plan being drafted."""
    run = Run.objects.create(
        task="upgrade web1 and restart nginx",
        operator=operator,
        operator_name=operator.name,
        status=RunStatus.RUNNING,
        plan_mode=True,
        started_by=started_by,
        steps=1,
        messages=[{"role": "user", "content": "upgrade web1 and restart nginx"}],
        turns=[{"message": "upgrade web1 and restart nginx", "answer": "", "first_step": 0}],
    )
    step = Step.objects.create(run=run, number=1, text="Upgrading first, then restarting nginx.")
    plan = Plan.objects.create(run=run, number=1)
    for index, command in enumerate(COMMANDS, start=1):
        call = ToolCall.objects.create(
            run=run,
            step=step,
            position=index,
            call_id=f"call-{index}",
            tool=SHELL,
            arguments={"command": command},
            status=CallStatus.DONE,
            intent="exec",
            decision="planned",
            ok=True,
            result=f"planned as step {index}: not run.",
        )
        PlanStep.objects.create(
            plan=plan,
            index=index,
            tool_call=call,
            tool=SHELL,
            arguments={"command": command},
            target="local",
            intent="exec",
            reason=f"Step {index} of the upgrade.",
        )
    return run


def parked_run(operator: Operator, *, started_by: User | None = None) -> Run:
    """A run waiting in awaiting_plan_approval with its plan of three steps, as the agent leaves it."""
    run = planning_run(operator, started_by=started_by)
    plans.submit(run, "Upgrade web1, then restart nginx.")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_PLAN_APPROVAL)
    run.refresh_from_db()
    return run


def finished_run(operator: Operator, status: str = RunStatus.COMPLETED) -> Run:
    return Run.objects.create(
        task="is nginx up?",
        operator=operator,
        operator_name=operator.name,
        status=status,
        answer="nginx is up on web1.",
        finished_at=timezone.now(),
        messages=[
            {"role": "user", "content": "is nginx up?"},
            {"role": "assistant", "content": "nginx is up on web1."},
        ],
        turns=[{"message": "is nginx up?", "answer": "nginx is up on web1.", "status": status, "first_step": 0}],
    )


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_of(client: Client, run: Run) -> str:
    return client.get(reverse("run-detail", args=[run.pk])).content.decode()


def plan_section(page: str) -> str:
    return page[page.index('id="plan"') : page.index('id="transcript"')]


def ticked_steps(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'name="run_steps" value="(\d+)" aria-label="[^"]*" checked', html)]


def approve_url(run: Run) -> str:
    return reverse("run-plan-approve", args=[run.pk])


def reject_url(run: Run) -> str:
    return reverse("run-plan-reject", args=[run.pk])


def test_the_run_page_shows_each_step_as_it_would_run_with_every_box_ticked(
    fixer: Operator, approver_user: User
) -> None:
    run = parked_run(fixer)
    page = page_of(logged_in(approver_user), run)
    plan = plan_section(page)
    assert "Awaiting approval" in plan and "Upgrade web1, then restart nginx." in plan
    assert all(f"$ {command}" in plan for command in COMMANDS)
    assert plan.count('class="intent intent-exec"') == 3 and "on <strong>local</strong>" in plan
    assert "Step 2 of the upgrade." in plan and "left to decide" in plan
    assert ticked_steps(plan) == [1, 2, 3]
    assert f'action="{approve_url(run)}"' in plan and f'action="{reject_url(run)}"' in plan


def test_an_approver_approves_the_plan_leaving_out_a_step(
    fixer: Operator, approver_user: User, woken_runs: list[int], django_capture_on_commit_callbacks
) -> None:
    run = parked_run(fixer)
    client = logged_in(approver_user)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(approve_url(run), {"plan": 1, "run_steps": [1, 3]})
    assert answer.status_code == 302 and answer["Location"] == f"/runs/{run.pk}/#plan"
    steps = {step.index: step for step in PlanStep.objects.filter(plan__run=run)}
    assert {i: s.status for i, s in steps.items()} == {
        1: PlanStepStatus.APPROVED,
        2: PlanStepStatus.SKIPPED,
        3: PlanStepStatus.APPROVED,
    }
    assert steps[2].grant is None and Grant.objects.filter(run_id=run.pk).count() == 2
    assert plans.latest(run).status == PlanStatus.APPROVED and woken_runs == [run.pk]
    page = client.get(answer["Location"]).content.decode()
    assert "Approved plan 1: 2 steps run now, in order." in page
    assert "Approved by <strong>bert</strong>" in plan_section(page)
    assert 'name="run_steps"' not in page  # decided: no forms any more


def test_an_htmx_approval_answers_with_the_plan_as_it_now_stands(
    fixer: Operator, approver_user: User, woken_runs: list[int]
) -> None:
    run = parked_run(fixer)
    answer = logged_in(approver_user).post(
        approve_url(run), {"plan": 1, "run_steps": [1, 2, 3]}, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200
    html = answer.content.decode()
    assert 'id="plan"' in html and "Approved by" in html and "<html" not in html  # the part, not the page


def test_leaving_out_every_step_is_refused_next_to_the_form_with_the_boxes_as_left(
    fixer: Operator, approver_user: User
) -> None:
    run = parked_run(fixer)
    answer = logged_in(approver_user).post(approve_url(run), {"plan": 1})
    assert answer.status_code == 400
    plan = plan_section(answer.content.decode())
    form = plan[plan.index('id="plan-approve"') : plan.index('id="plan-reject"')]
    assert "Every step is left out: reject the plan instead." in form
    assert ticked_steps(form) == []
    assert plans.latest(run).status == PlanStatus.AWAITING_APPROVAL


def test_rejecting_needs_a_reason_shown_next_to_the_field_then_runs_nothing(
    fixer: Operator, approver_user: User, woken_runs: list[int], django_capture_on_commit_callbacks
) -> None:
    run = parked_run(fixer)
    client = logged_in(approver_user)
    answer = client.post(reject_url(run), {"plan": 1, "reason": "   "})
    assert answer.status_code == 400
    plan = plan_section(answer.content.decode())
    form = plan[plan.index('id="plan-reject"') :]
    field = form[form.index("<textarea") : form.index("</div>")]
    assert 'aria-invalid="true"' in field and "Say why the plan is rejected" in field
    assert ticked_steps(plan) == [1, 2, 3]  # the Approve form beside it is untouched
    assert plans.latest(run).status == PlanStatus.AWAITING_APPROVAL and woken_runs == []

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reject_url(run), {"plan": 1, "reason": "not during office hours"})
    assert answer.status_code == 302
    plan = plans.latest(run)
    assert plan.status == PlanStatus.REJECTED and plan.decision_reason == "not during office hours"
    assert set(plan.steps.values_list("status", flat=True)) == {PlanStepStatus.NOT_RUN}
    assert not Grant.objects.filter(run_id=run.pk).exists() and woken_runs == [run.pk]
    assert "Rejected by <strong>bert</strong>" in plan_section(page_of(client, run))


def test_a_viewer_sees_the_plan_without_forms_and_may_not_decide_it(fixer: Operator, viewer_user: User) -> None:
    run = parked_run(fixer)
    client = logged_in(viewer_user)
    plan = plan_section(page_of(client, run))
    assert "$ apt-get upgrade -y" in plan and "<form" not in plan
    answer = client.post(approve_url(run), {"plan": 1, "run_steps": [1, 2, 3]})
    assert answer.status_code == 403
    assert "vera may not decide plans" in plan_section(answer.content.decode())
    assert client.post(reject_url(run), {"plan": 1, "reason": "no"}).status_code == 403
    assert plans.latest(run).status == PlanStatus.AWAITING_APPROVAL and not Grant.objects.exists()


def test_under_four_eyes_the_starter_may_reject_but_not_approve(
    fixer: Operator, approver_user: User, admin_user: User
) -> None:
    update_site_settings(actor=admin_user, four_eyes_approvals=True)
    run = parked_run(fixer, started_by=approver_user)
    client = logged_in(approver_user)
    plan = plan_section(page_of(client, run))
    assert "another approver must approve its plan" in plan and 'disabled title="Four-eyes' in plan
    answer = client.post(approve_url(run), {"plan": 1, "run_steps": [1, 2, 3]})
    assert answer.status_code == 403 and "another approver must approve its plan" in answer.content.decode()
    assert plans.latest(run).status == PlanStatus.AWAITING_APPROVAL
    assert "another approver" not in plan_section(page_of(logged_in(admin_user), run))


def test_a_decision_on_a_plan_already_decided_says_so_and_changes_nothing(
    fixer: Operator, approver_user: User, admin_user: User
) -> None:
    run = parked_run(fixer)
    plans.reject(run.pk, actor=admin_user, reason="wrong host")
    answer = logged_in(approver_user).post(approve_url(run), {"plan": 1, "run_steps": [1, 2, 3]})
    assert answer.status_code == 409
    assert "plan is rejected, not awaiting approval" in plan_section(answer.content.decode())
    assert plans.latest(run).decided_by == admin_user


def test_the_approvals_page_lists_a_pending_plan_with_its_steps_and_counts_it(
    fixer: Operator, approver_user: User
) -> None:
    run = parked_run(fixer)
    expired = parked_run(fixer)
    Plan.objects.filter(run=expired).update(expires_at=timezone.now() - timedelta(seconds=1))
    page = logged_in(approver_user).get(reverse("approvals")).content.decode()
    plans_part = page[page.index('id="pending-plans"') :]
    assert plans_part.count('class="request plan-card"') == 1
    assert "fixer</strong> proposes a plan of 3 steps" in plans_part
    assert "Upgrade web1, then restart nginx." in plans_part
    assert "$ systemctl restart nginx.service" in plans_part
    assert f'href="/runs/{run.pk}/#plan">Review and decide</a>' in plans_part
    assert re.search(r'id="approval-count" class="badge">1</span>', page)


def test_the_approvals_page_hides_the_plans_card_while_none_waits(approver_user: User) -> None:
    page = logged_in(approver_user).get(reverse("approvals")).content.decode()
    assert re.search(r'<section class="card" id="pending-plans" hidden', page)


@pytest.mark.django_db(transaction=True)
def test_a_plan_that_awaits_approval_is_pushed_with_its_forms_to_approvers(
    fixer: Operator, approver_user: User, viewer_user: User, open_socket
) -> None:
    run = planning_run(fixer)
    approver = open_socket(approver_user, path=f"/ws/runs/{run.pk}/")
    viewer = open_socket(viewer_user, path=f"/ws/runs/{run.pk}/")
    approvals = open_socket(approver_user)
    first = approver.receive_text()
    viewer.receive_text()
    assert 'id="plan"' in first and "Being drafted" in first and 'name="run_steps"' not in first

    plans.submit(run, "Upgrade web1, then restart nginx.")  # announces the plan to the approvals group
    Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_PLAN_APPROVAL)
    live.publish_run(run.pk)  # as the agent's step does (no transaction open: sent at once)

    pushed, seen = approver.receive_text(), viewer.receive_text()
    assert 'id="plan" class="card plan" hx-swap-oob="true"' in pushed and 'id="transcript"' in pushed
    assert ticked_steps(pushed) == [1, 2, 3] and f'hx-post="{approve_url(run)}"' in pushed
    assert "Awaiting approval" in seen and "$ apt-get update" in seen and "<form" not in plan_section(seen)
    listed = approvals.receive_text()
    assert "proposes a plan of 3 steps" in listed and 'id="approval-count"' in listed


def test_a_reply_to_a_finished_run_goes_on_in_the_same_run(
    fixer: Operator, approver_user: User, woken_runs: list[int], django_capture_on_commit_callbacks
) -> None:
    run = finished_run(fixer, RunStatus.FAILED)
    client = logged_in(approver_user)
    assert 'id="reply"' in page_of(client, run)
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reverse("run-reply", args=[run.pk]), {"text": "good, now restart it"})
    assert answer.status_code == 302 and answer["Location"] == f"/runs/{run.pk}/"
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and woken_runs == [run.pk]
    assert [turn["message"] for turn in run.turns] == ["is nginx up?", "good, now restart it"]
    page = page_of(client, run)
    assert 'id="reply"' not in page  # shown on finished runs only
    conversation = page[page.index('id="transcript"') :]
    assert conversation.index("is nginx up?") < conversation.index("nginx is up on web1.")
    assert conversation.index("nginx is up on web1.") < conversation.index("good, now restart it")


def test_a_reply_to_a_run_still_working_is_refused_and_changes_nothing(
    fixer: Operator, approver_user: User, woken_runs: list[int]
) -> None:
    run = finished_run(fixer)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None)
    client = logged_in(approver_user)
    assert 'id="reply"' not in page_of(client, run)
    answer = client.post(reverse("run-reply", args=[run.pk]), {"text": "and restart it"})
    assert answer.status_code == 400
    html = answer.content.decode()
    assert f"Run #{run.pk} is running: reply once it has finished." in html
    assert "and restart it" in html and "<textarea" not in html[html.index('id="transcript"') :]
    run.refresh_from_db()
    assert len(run.turns) == 1 and woken_runs == []


def test_an_htmx_reply_reloads_the_run_page(fixer: Operator, approver_user: User, woken_runs: list[int]) -> None:
    run = finished_run(fixer)
    answer = logged_in(approver_user).post(
        reverse("run-reply", args=[run.pk]), {"text": "now restart it"}, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200 and answer["HX-Redirect"] == f"/runs/{run.pk}/"
    assert Run.objects.get(pk=run.pk).turns[-1]["message"] == "now restart it"


def test_an_empty_reply_is_refused_next_to_the_field(fixer: Operator, approver_user: User) -> None:
    run = finished_run(fixer)
    answer = logged_in(approver_user).post(
        reverse("run-reply", args=[run.pk]), {"text": ""}, headers={"HX-Request": "true"}
    )
    assert answer.status_code == 200
    assert "Say what to do next." in answer.content.decode() and Run.objects.get(pk=run.pk).status == "completed"


def test_a_viewer_may_not_reply(fixer: Operator, viewer_user: User) -> None:
    run = finished_run(fixer)
    client = logged_in(viewer_user)
    assert 'id="reply"' not in page_of(client, run)
    assert client.post(reverse("run-reply", args=[run.pk]), {"text": "restart it"}).status_code == 403
    assert len(Run.objects.get(pk=run.pk).turns) == 1


def test_the_task_form_starts_a_run_in_plan_mode(admin_client: Client, fixer: Operator, woken_runs: list[int]) -> None:
    answer = admin_client.post(reverse("tasks"), {"task": "upgrade web1", "operator": fixer.pk, "plan_mode": "on"})
    run = Run.objects.get()
    assert answer.status_code == 302 and run.plan_mode
    admin_client.post(reverse("tasks"), {"task": "look around", "operator": fixer.pk})
    assert not Run.objects.exclude(pk=run.pk).get().plan_mode


def test_the_operator_form_sets_plan_first(admin_client: Client, fixer: Operator) -> None:
    form = {
        "name": "planner",
        "provider": fixer.provider_id,
        "ceiling": "exec",
        "jit_mode": "inherit",
        "max_steps": 20,
        "token_budget": 200000,
        "cost_budget": 0,
        "enabled": "on",
        "plan_first": "on",
    }
    assert 'name="plan_first"' in admin_client.get(reverse("operator-create")).content.decode()
    assert admin_client.post(reverse("operator-create"), form).status_code == 302
    assert Operator.objects.get(name="planner").plan_first
