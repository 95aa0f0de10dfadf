"""The four-eyes rule (Settings, off by default): the person who started a run cannot approve that run's
access requests, on any path (the service, the Approvals page, `jit approve`); denying stays open to them.
Runs from schedules and webhooks have no starter, so any approver decides theirs."""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEntry
from jit import services
from jit.models import AccessRequest
from operators import entrypoints
from operators.models import Operator, Run
from tools import gateway
from vigilus.services import site_settings, update_site_settings


def touch(path: Path) -> dict:
    return {"command": f"touch {path}"}


def command(name: str, *args: str) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def four_eyes(on: bool, actor: User) -> None:
    update_site_settings(actor=actor, four_eyes_approvals=on)


def raise_request(run: Run, operator: Operator, path: Path) -> AccessRequest:
    """What the run's Operator does when it wants to write: a strict request, pending for a person."""
    assert gateway.execute("shell__run_command", touch(path), operator=operator, run=run).decision == "pending"
    return AccessRequest.objects.get(run_id=run.pk)


def approve_forms(page: str) -> list[str]:
    return re.findall(r'<form method="post" action="([^"]+/approve/)"', page)


def refusals() -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(event="jit.approval_refused").order_by("sequence"))


@pytest.fixture
def fixer(make_operator) -> Operator:
    return make_operator()


@pytest.fixture
def bert_runs(fixer: Operator, approver_user: User) -> Run:
    """A run bert (an approver) started from the dashboard's task form."""
    response = logged_in(approver_user).post(reverse("tasks"), {"task": "touch the marker", "operator": fixer.pk})
    assert response.status_code == 302
    return Run.objects.get()


@pytest.mark.django_db
def test_the_rule_is_off_until_turned_on(admin_user: User, approver_user: User, bert_runs: Run, fixer, tmp_path):
    assert bert_runs.started_by == approver_user
    request = raise_request(bert_runs, fixer, tmp_path / "a")
    assert site_settings().four_eyes_approvals is False  # a one-person homelab approves its own runs
    page = logged_in(approver_user).get(reverse("approvals")).content.decode()
    assert approve_forms(page) == [reverse("request-approve", args=[request.pk])] and "Four-eyes" not in page
    assert services.approve(request.pk, actor=approver_user).granted_by == approver_user


@pytest.mark.django_db
def test_the_starter_is_refused_by_the_service_audited_and_may_still_deny(
    admin_user: User, approver_user: User, bert_runs: Run, fixer, tmp_path
) -> None:
    four_eyes(True, admin_user)
    request = raise_request(bert_runs, fixer, tmp_path / "a")
    with pytest.raises(services.FourEyesRefused) as refused:
        services.approve(request.pk, actor=approver_user)
    assert str(refused.value).startswith(f"Four-eyes approvals are on: you started run #{bert_runs.pk}, ")
    assert "another approver must approve" in str(refused.value)
    assert AccessRequest.objects.get(pk=request.pk).status == "pending"
    (entry,) = refusals()
    assert (entry.actor, entry.decision, entry.run_id, entry.tool) == ("bert", "denied", bert_runs.pk, request.tool)
    assert entry.details["request_id"] == request.pk and "you started run" in entry.reason
    services.deny(request.pk, actor=approver_user, reason="changed my mind")  # stopping one's own run is fine
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("denied", approver_user) and len(refusals()) == 1


@pytest.mark.django_db
def test_on_the_approvals_page_the_starter_sees_why_they_cannot_approve(
    admin_user: User, approver_user: User, bert_runs: Run, fixer, tmp_path
) -> None:
    four_eyes(True, admin_user)
    request = raise_request(bert_runs, fixer, tmp_path / "a")
    approve_url = reverse("request-approve", args=[request.pk])
    bert, alice = logged_in(approver_user), logged_in(admin_user)
    page = bert.get(reverse("approvals")).content.decode()
    assert approve_forms(page) == [] and re.search(r"<button[^>]*disabled[^>]*>Approve</button>", page)
    assert f"Four-eyes approvals are on: you started run #{bert_runs.pk}" in page
    assert reverse("request-deny", args=[request.pk]) in page  # denying stays open
    assert f"Run #{bert_runs.pk}</a>, started by bert" in page
    assert approve_forms(alice.get(reverse("approvals")).content.decode()) == [approve_url]
    # A POST all the same (a stale page, a hand-made request) is refused with the reason, and audited.
    followed = bert.post(approve_url, {"scope": "call"}, follow=True).content.decode()
    assert f"you started run #{bert_runs.pk}, so another approver must approve" in followed
    assert AccessRequest.objects.get(pk=request.pk).status == "pending" and len(refusals()) == 1
    alice.post(approve_url, {"scope": "call"})
    assert AccessRequest.objects.get(pk=request.pk).decided_by == admin_user


@pytest.mark.django_db
def test_the_task_command_starts_runs_as_its_user_and_jit_approve_refuses_them(
    admin_user: User, approver_user: User, fixer, tmp_path
) -> None:
    four_eyes(True, admin_user)
    shown = json.loads(command("task", "touch the marker", "--operator", "fixer", "--as", "bert", "--json"))
    assert shown["started_by"] == "bert"
    run = Run.objects.get(pk=shown["id"])
    assert json.loads(command("runs", "show", str(run.pk), "--json"))["started_by"] == "bert"
    request = raise_request(run, fixer, tmp_path / "a")
    with pytest.raises(CommandError, match=rf"^Four-eyes approvals are on: you started run #{run.pk}, "):
        command("jit", "approve", str(request.pk), "--as", "bert")
    assert AccessRequest.objects.get(pk=request.pk).status == "pending" and len(refusals()) == 1
    assert "grant #" in command("jit", "approve", str(request.pk), "--as", "alice")
    # Without --as, both commands act as the first admin: the same person, refused the same way.
    mine = Run.objects.get(pk=json.loads(command("task", "touch another", "--operator", "fixer", "--json"))["id"])
    assert mine.started_by == admin_user
    gateway.execute("shell__run_command", touch(tmp_path / "b"), operator=fixer, run=mine)
    with pytest.raises(CommandError, match="you started run"):
        command("jit", "approve", str(AccessRequest.objects.get(run_id=mine.pk).pk))


@pytest.mark.django_db
def test_runs_from_schedules_and_webhooks_have_no_starter_so_any_approver_decides(
    admin_user: User, fixer, tmp_path
) -> None:
    four_eyes(True, admin_user)
    schedule = entrypoints.add_schedule(name="nightly", operator=fixer, cron="nightly", task="touch", actor=admin_user)
    scheduled = entrypoints.run_schedule(schedule.pk)
    webhook, _token = entrypoints.add_webhook(name="alerts", operator=fixer, actor=admin_user)
    alerted = entrypoints.receive(webhook, {"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]})
    for number, run in enumerate((scheduled, alerted)):
        assert run.started_by is None
        request = raise_request(run, fixer, tmp_path / str(number))
        assert services.approve(request.pk, actor=admin_user).granted_by == admin_user  # alice added both
    assert refusals() == []


@pytest.mark.django_db
def test_a_tool_grant_the_starter_gave_elsewhere_does_not_cover_their_own_run(
    admin_user: User, approver_user: User, bert_runs: Run, fixer, tmp_path
) -> None:
    """Approving another run's request for the whole tool would otherwise approve their own run's calls too."""
    four_eyes(True, admin_user)
    scheduled = entrypoints.run_schedule(
        entrypoints.add_schedule(name="nightly", operator=fixer, cron="nightly", task="touch", actor=admin_user).pk
    )
    services.approve(raise_request(scheduled, fixer, tmp_path / "a").pk, actor=approver_user, scope="tool")
    assert gateway.execute("shell__run_command", touch(tmp_path / "b"), operator=fixer, run=scheduled).decision == (
        "approved"
    )
    mine = gateway.execute("shell__run_command", touch(tmp_path / "c"), operator=fixer, run=bert_runs)
    assert mine.decision == "pending" and not (tmp_path / "c").exists()
    four_eyes(False, admin_user)
    assert gateway.execute("shell__run_command", touch(tmp_path / "d"), operator=fixer, run=bert_runs).decision == (
        "approved"
    )


@pytest.mark.django_db
def test_the_settings_page_turns_the_rule_on_and_off(admin_client: Client) -> None:
    from vigilus.forms import SiteSettingsForm

    page = admin_client.get(reverse("settings")).content.decode()
    assert "Four-eyes approvals" in page and "cannot approve its access requests" in page

    def submit(**changes: object) -> None:
        form = SiteSettingsForm(instance=site_settings())
        data = {name: form[name].value() for name in form.fields if form[name].value() not in (None, False)}
        data.update(changes)
        data = {name: value for name, value in data.items() if value is not False}  # an unticked box is not sent
        assert admin_client.post(reverse("settings"), data).status_code == 302

    submit(four_eyes_approvals="on")
    assert site_settings().four_eyes_approvals is True
    entry = AuditEntry.objects.filter(event="settings.changed").latest("sequence")
    assert entry.actor == "alice" and "four_eyes_approvals" in entry.details["fields"]
    submit(four_eyes_approvals=False)
    assert site_settings().four_eyes_approvals is False


@pytest.mark.django_db(transaction=True)
def test_the_live_approvals_push_disables_approve_for_the_starter_only(
    open_socket, admin_user: User, approver_user: User, bert_runs: Run, fixer, tmp_path
) -> None:
    four_eyes(True, admin_user)
    bert, alice = open_socket(approver_user), open_socket(admin_user)
    request = raise_request(bert_runs, fixer, tmp_path / "a")
    to_bert, to_alice = bert.receive_text(), alice.receive_text()
    assert f'id="request-{request.pk}"' in to_bert and f'id="request-{request.pk}"' in to_alice
    assert approve_forms(to_bert) == [] and f"you started run #{bert_runs.pk}" in to_bert
    assert approve_forms(to_alice) == [reverse("request-approve", args=[request.pk])]
    assert "you started run" not in to_alice
