"""Operators, runs, schedules and webhooks in the Django admin: every page renders, edits and removals go
through the audited verbs (in the change's own transaction), runs are view only, and a webhook's token is
never in any page."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from audit.models import AuditEntry
from audit.services import AuditWriteError
from operators import entrypoints
from operators.choices import CallStatus, Ceiling, OperatorJITMode, RunStatus, TaskSource
from operators.models import Operator, Run, Schedule, Step, ToolCall, Webhook
from providers.services import create_provider
from tools.choices import ReviewState, Transport
from tools.models import MCPServer, Tool

pytestmark = pytest.mark.django_db


@dataclass
class Lab:
    operator: Operator
    shell: Tool
    files: Tool
    withdrawn: Tool
    run: Run
    schedule: Schedule
    webhook: Webhook
    token: str


@pytest.fixture
def lab(admin_user: User) -> Lab:
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url="http://127.0.0.1:9/v1", default_model="m"
    )
    server = MCPServer.objects.create(name="box", transport=Transport.STDIO, command="true")

    def tool(name: str, **fields: object) -> Tool:
        return Tool.objects.create(
            server=server, name=name, qualified_name=f"box__{name}", definition_hash="h", **fields
        )

    shell, files, withdrawn = tool("shell"), tool("files"), tool("changed", review_state=ReviewState.CHANGED)
    operator = Operator.objects.create(name="watcher", provider=provider, model="m-large", ceiling=Ceiling.READ_ONLY)
    operator.tools.add(shell)
    run = Run.objects.create(
        task="check the disks on nas",
        source=TaskSource.WEBHOOK,
        operator=operator,
        operator_name="watcher",
        status=RunStatus.COMPLETED,
        steps=1,
        tokens=321,
        answer="Disks are fine.",
    )
    step = Step.objects.create(run=run, number=1, text="Looking at df output.", prompt_tokens=300)
    ToolCall.objects.create(
        run=run,
        step=step,
        call_id="c1",
        tool="box__shell",
        arguments={"command": "df -h"},
        status=CallStatus.DONE,
        ok=True,
        result="/dev/sda1 41% /",
    )
    schedule = entrypoints.add_schedule(
        name="disk-check", operator=operator, cron="hourly", task="check disks", actor=admin_user
    )
    webhook, token = entrypoints.add_webhook(
        name="alertmanager", operator=operator, instructions="triage it", actor=admin_user
    )
    return Lab(operator, shell, files, withdrawn, run, schedule, webhook, token)


def html(client: Client, name: str, *args: object, **query: str) -> str:
    response = client.get(reverse(f"admin:{name}", args=args), query)
    assert response.status_code == 200, (name, response.status_code)
    return response.content.decode()


def operator_data(operator: Operator, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": operator.name,
        "description": operator.description,
        "system_prompt": operator.system_prompt,
        "provider": operator.provider_id,
        "model": operator.model,
        "tools": [t.pk for t in operator.tools.all()],
        "ceiling": operator.ceiling,
        "jit_mode": operator.jit_mode,
        "max_steps": operator.max_steps,
        "token_budget": operator.token_budget,
        "cost_budget": str(operator.cost_budget),
        "_save": "Save",
    }
    if operator.enabled:
        data["enabled"] = "on"
    data.update(changes)
    return data


def test_every_changelist_and_page_renders_for_an_admin(admin_client: Client, lab: Lab) -> None:
    operators = html(admin_client, "operators_operator_changelist")
    assert "watcher" in operators and "m-large" in operators and "Read only" in operators
    runs = html(admin_client, "operators_run_changelist")
    assert f"run #{lab.run.pk}" in runs and "Completed" in runs and ">321<" in runs
    assert "disk-check" in html(admin_client, "operators_schedule_changelist")
    assert "alertmanager" in html(admin_client, "operators_webhook_changelist")
    assert "box__shell" in html(admin_client, "operators_operator_change", lab.operator.pk)
    run = html(admin_client, "operators_run_change", lab.run.pk)
    assert "Looking at df output." in run and "df -h" in run and "/dev/sda1 41%" in run
    assert reverse("run-detail", args=[lab.run.pk]) in run
    assert "check disks" in html(admin_client, "operators_schedule_change", lab.schedule.pk)
    assert "triage it" in html(admin_client, "operators_webhook_change", lab.webhook.pk)


def test_filters_and_search_narrow_the_lists(admin_client: Client, lab: Lab) -> None:
    other = Run.objects.create(task="upgrade the pi", source=TaskSource.DASHBOARD, status=RunStatus.FAILED)
    searched = html(admin_client, "operators_run_changelist", q="disks")
    filtered = html(admin_client, "operators_run_changelist", status__exact="failed", source__exact="dashboard")
    assert f"run #{lab.run.pk}<" in searched and f"run #{other.pk}<" not in searched
    assert f"run #{other.pk}<" in filtered and f"run #{lab.run.pk}<" not in filtered
    assert "watcher" not in html(admin_client, "operators_operator_changelist", ceiling__exact="exec")


def test_an_operator_edited_in_the_admin_is_saved_and_audited(admin_client: Client, lab: Lab) -> None:
    url = reverse("admin:operators_operator_change", args=[lab.operator.pk])
    form = admin_client.get(url).content.decode()
    offered = re.search(r'<select name="tools"[^>]*>(.*?)</select>', form, re.S).group(1)
    assert "box__files" in offered and "box__changed" not in offered  # a withdrawn tool is not assignable
    data = operator_data(lab.operator, ceiling=Ceiling.EXEC, jit_mode=OperatorJITMode.STRICT, max_steps=7)
    data["tools"] = [lab.shell.pk, lab.files.pk]
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    operator = Operator.objects.get(pk=lab.operator.pk)
    assert (operator.ceiling, operator.jit_mode, operator.max_steps) == ("exec", "strict", 7)
    assert sorted(operator.tools.values_list("qualified_name", flat=True)) == ["box__files", "box__shell"]
    entry = AuditEntry.objects.filter(event="operator.changed").get()
    assert (entry.actor, entry.actor_kind, entry.target) == ("alice", "user", "watcher")
    assert entry.details["ceiling"] == "exec" and entry.details["tools"] == ["box__files", "box__shell"]


def test_an_operator_added_in_the_admin_is_audited(admin_client: Client, lab: Lab) -> None:
    data = operator_data(lab.operator, name="fixer", model="", tools=[lab.files.pk])
    response = admin_client.post(reverse("admin:operators_operator_add"), data)
    assert response.status_code == 302
    assert list(Operator.objects.get(name="fixer").tools.values_list("qualified_name", flat=True)) == ["box__files"]
    entry = AuditEntry.objects.filter(event="operator.created").get()
    assert (entry.actor, entry.target, entry.details["tools"]) == ("alice", "fixer", ["box__files"])


def test_an_edit_whose_audit_entry_cannot_be_written_is_not_saved(
    admin_client: Client, lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(event: str, **details: object) -> None:
        raise AuditWriteError(f"the audit entry for {event} could not be written")

    monkeypatch.setattr("operators.services.record", broken)
    url = reverse("admin:operators_operator_change", args=[lab.operator.pk])
    data = operator_data(lab.operator, ceiling=Ceiling.ELEVATE, tools=[lab.shell.pk, lab.files.pk])
    with pytest.raises(AuditWriteError):
        admin_client.post(url, data)
    operator = Operator.objects.get(pk=lab.operator.pk)
    assert operator.ceiling == Ceiling.READ_ONLY
    assert list(operator.tools.values_list("qualified_name", flat=True)) == ["box__shell"]


def test_removing_an_operator_removes_its_schedules_beat_entries_and_is_audited(admin_client: Client, lab: Lab) -> None:
    beat_entry = lab.schedule.periodic_task_id
    url = reverse("admin:operators_operator_delete", args=[lab.operator.pk])
    confirm = admin_client.get(url).content.decode()
    assert "disk-check" in confirm and "alertmanager" in confirm  # what goes with it is listed
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Operator.objects.filter(pk=lab.operator.pk).exists()
    assert not PeriodicTask.objects.filter(pk=beat_entry).exists()  # beat no longer fires for it
    events = set(AuditEntry.objects.values_list("event", "target"))
    assert {("operator.removed", "watcher"), ("schedule.removed", "disk-check")} <= events
    assert ("webhook.removed", "alertmanager") in events
    assert Run.objects.get(pk=lab.run.pk).operator_name == "watcher"  # the history stays


def test_runs_are_view_only(admin_client: Client, lab: Lab) -> None:
    change_url = reverse("admin:operators_run_change", args=[lab.run.pk])
    page = admin_client.get(change_url).content.decode()
    assert 'name="_save"' not in page and "<textarea" not in page and 'name="tool_calls-0-result"' not in page
    assert admin_client.get(reverse("admin:operators_run_add")).status_code == 403
    assert admin_client.post(change_url, {"task": "rm -rf /", "status": "queued"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:operators_run_delete", args=[lab.run.pk]), {"post": "yes"}).status_code == 403
    )
    changelist = admin_client.post(
        reverse("admin:operators_run_changelist"), {"action": "delete_selected", "_selected_action": [lab.run.pk]}
    )
    assert changelist.status_code == 200 and 'name="action"' not in changelist.content.decode()
    run = Run.objects.get(pk=lab.run.pk)
    assert (run.task, run.status, run.step_set.count(), run.tool_calls.count()) == (
        "check the disks on nas",
        "completed",
        1,
        1,
    )


def test_schedules_and_webhooks_are_added_elsewhere_and_removed_through_their_verbs(
    admin_client: Client, lab: Lab
) -> None:
    assert admin_client.get(reverse("admin:operators_schedule_add")).status_code == 403
    assert admin_client.get(reverse("admin:operators_webhook_add")).status_code == 403
    schedule_url = reverse("admin:operators_schedule_change", args=[lab.schedule.pk])
    assert admin_client.post(schedule_url, {"cron": "* * * * *"}).status_code == 403
    beat_entry = lab.schedule.periodic_task_id
    removed = admin_client.post(
        reverse("admin:operators_schedule_changelist"),
        {"action": "delete_selected", "_selected_action": [lab.schedule.pk], "post": "yes"},
    )
    assert removed.status_code == 302
    assert not Schedule.objects.exists() and not PeriodicTask.objects.filter(pk=beat_entry).exists()
    webhook_delete = reverse("admin:operators_webhook_delete", args=[lab.webhook.pk])
    assert admin_client.post(webhook_delete, {"post": "yes"}).status_code == 302
    assert not Webhook.objects.exists()
    events = set(AuditEntry.objects.values_list("event", "actor", "target"))
    assert {("schedule.removed", "alice", "disk-check"), ("webhook.removed", "alice", "alertmanager")} <= events


def test_the_webhook_token_and_its_digest_never_appear_in_the_admin(admin_client: Client, lab: Lab) -> None:
    webhook = Webhook.objects.get(pk=lab.webhook.pk)
    digest = webhook.token_hash
    assert entrypoints.check_token(webhook, lab.token)  # the token the page would have to leak is the real one
    pages = [
        html(admin_client, "operators_webhook_changelist"),
        html(admin_client, "operators_webhook_change", lab.webhook.pk),
        html(admin_client, "operators_webhook_delete", lab.webhook.pk),
        html(admin_client, "operators_webhook_history", lab.webhook.pk),
        html(admin_client, "operators_operator_change", lab.operator.pk),
        html(admin_client, "operators_operator_delete", lab.operator.pk),
    ]
    assert "alertmanager" in pages[1]
    for page in pages:
        assert lab.token not in page and digest not in page and "token hash" not in page.lower()


def test_the_admin_pages_need_a_staff_login(client: Client, viewer_client: Client, lab: Lab) -> None:
    url = reverse("admin:operators_operator_change", args=[lab.operator.pk])
    for anyone in (client, viewer_client):  # anonymous: the dashboard's login; a viewer: the admin's
        response = anyone.get(url)
        assert response.status_code == 302 and "login/" in response["Location"]
    viewer_client.post(url, operator_data(lab.operator, ceiling=Ceiling.ELEVATE))
    assert Operator.objects.get(pk=lab.operator.pk).ceiling == Ceiling.READ_ONLY
