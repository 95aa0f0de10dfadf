"""The Overview page: a first-run checklist until the setup is done, then what needs a person, the health of what
Vigilus depends on, and charts of runs per day, tool calls by intent and decision, and time to approve."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from jit.choices import RequestStatus
from jit.models import AccessRequest
from operators.choices import RunStatus
from operators.models import Operator, Run, Step, ToolCall
from providers.choices import CheckStatus
from providers.services import create_provider
from tools.models import Credential, Server
from vigilus import overview

pytestmark = pytest.mark.django_db


def a_run(status: str, days_ago: int = 0, task: str = "check the disks") -> Run:
    run = Run.objects.create(task=task, status=status)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_ago))
    return run


def a_call(run: Run, intent: str, decision: str) -> ToolCall:
    step, _ = Step.objects.get_or_create(run=run, number=1)
    call_id = f"c{ToolCall.objects.count()}"
    return ToolCall.objects.create(run=run, step=step, call_id=call_id, tool="t", intent=intent, decision=decision)


def test_the_checklist_leads_through_the_setup_and_goes_once_it_is_done(admin_user: User, admin_client: Client) -> None:
    page = admin_client.get(reverse("home")).content.decode()
    assert 'id="setup"' in page
    assert [step.done for step in overview.setup_checklist()] == [False] * 5
    for step in overview.setup_checklist():
        assert f'<a href="{step.url}">{step.label}</a>' in page

    provider = create_provider(actor=admin_user, name="lab", kind="ollama", base_url="http://127.0.0.1:9/")
    assert [step.done for step in overview.setup_checklist()] == [True, False, False, False, False]
    provider.tools_check_status = CheckStatus.OK
    provider.save()
    Operator.objects.create(name="fixer", provider=provider)
    Server.objects.create(name="nas", address="127.0.0.1", credential=Credential.objects.create(name="k", username="u"))
    a_run(RunStatus.COMPLETED)
    assert all(step.done for step in overview.setup_checklist())
    assert 'id="setup"' not in admin_client.get(reverse("home")).content.decode()


def test_runs_per_day_count_each_status_on_its_day() -> None:
    for status in (RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.RUNNING):
        a_run(status)
    a_run(RunStatus.FAILED, days_ago=3)
    a_run(RunStatus.COMPLETED, days_ago=20)  # before the chart's window
    days = overview.runs_per_day()
    assert len(days) == overview.CHART_DAYS and days[-1].day == timezone.localdate()
    today, three_days_ago = days[-1], days[-4]
    assert (today.completed, today.failed, today.other) == (2, 1, 1)
    assert (three_days_ago.completed, three_days_ago.failed, three_days_ago.other) == (0, 1, 0)
    assert today.completed_height == 50.0 and three_days_ago.failed_height == 25.0
    assert sum(day.total for day in days) == 5


def test_tool_calls_are_grouped_by_intent_and_decision_largest_first() -> None:
    run = a_run(RunStatus.COMPLETED)
    for intent, decision in [("read", "allowed")] * 3 + [("exec", "denied")] + [("exec", "approved")] * 2:
        a_call(run, intent, decision)
    a_call(run, "exec", "")  # proposed, not decided yet: not counted
    bars = overview.calls_by_intent_and_decision()
    assert [(b.intent, b.decision, b.count) for b in bars] == [
        ("read", "allowed", 3),
        ("exec", "approved", 2),
        ("exec", "denied", 1),
    ]
    assert bars[0].width == 100.0 and bars[2].width == pytest.approx(33.3)


def test_time_to_approve_is_the_median_and_90th_percentile_of_approvals() -> None:
    now = timezone.now()
    for seconds in (10, 20, 30, 40, 300):
        request = AccessRequest.objects.create(tool="t", intent="exec", expires_at=now + timedelta(hours=1),
                                               status=RequestStatus.APPROVED, decided_at=now)  # fmt: skip
        AccessRequest.objects.filter(pk=request.pk).update(created_at=now - timedelta(seconds=seconds))
    AccessRequest.objects.create(tool="t", intent="exec", expires_at=now, status=RequestStatus.DENIED, decided_at=now)
    median, p90, count = overview.time_to_approve()
    assert (median, p90, count) == (30.0, 300.0, 5)


def test_failed_runs_stand_out_and_pending_requests_show_to_approvers_only(
    admin_client: Client, viewer_client: Client
) -> None:
    failed = a_run(RunStatus.FAILED, task="restart the nas container")
    a_run(RunStatus.COMPLETED, task="list the disks")
    AccessRequest.objects.create(tool="shell__run_command", intent="exec", target="nas",
                                 expires_at=timezone.now() + timedelta(minutes=5))  # fmt: skip
    page = admin_client.get(reverse("home")).content.decode()
    assert re.search(rf'<li class="failed-run"><a href="/runs/{failed.pk}/">#{failed.pk}</a> restart the nas', page)
    assert 'id="overview-pending"' in page and "shell__run_command" in page
    assert 'id="overview-pending"' not in viewer_client.get(reverse("home")).content.decode()
