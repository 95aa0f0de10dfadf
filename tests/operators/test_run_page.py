"""The run page: the transcript as a person sees it, streamed live over /ws/runs/<id>/."""

from __future__ import annotations

import html
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from jit.models import AccessRequest
from operators import agent, live
from operators.choices import RunStatus
from operators.models import Operator, Run, Step, ToolCall
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer, text, tool_call
from tools.models import Tool
from tools.services import discover_all
from vigilus.celery import app as celery_app
from vigilus.services import update_site_settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reader(admin_user):
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    with FakeLLMServer([tool_call("shell__run_command", {"command": "uname -s"}), text("It is Linux.")]) as model:
        provider = create_provider(
            actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
        )
        op = Operator.objects.create(name="reader", provider=provider, ceiling="read_only")
        op.tools.add(Tool.objects.get(qualified_name="shell__run_command"))
        yield op


@pytest.fixture
def fixer(admin_user, tmp_path):
    """A strict Operator whose model wants to write a file: its run parks on an access request."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    script = [tool_call("shell__run_command", {"command": f"touch {tmp_path / 'marker'}"}), text("Touched.")]
    with FakeLLMServer(script) as model:
        provider = create_provider(
            actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
        )
        op = Operator.objects.create(name="fixer", provider=provider, ceiling="exec", jit_mode="strict")
        op.tools.add(Tool.objects.get(qualified_name="shell__run_command"))
        yield op


@pytest.fixture
def woken_runs(monkeypatch) -> list[int]:
    """Runs a decision would wake through Celery: recorded, not sent (no worker of the session may take them)."""
    woken: list[int] = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, args=(), **kw: woken.append(args[0]))
    return woken


def queued_run(operator: Operator) -> Run:
    """A run stepped by the test itself: not enqueued, so no Celery worker of the session takes it."""
    return Run.objects.create(task="which kernel?", requested_operator=operator)


def run_to_rest(run: Run) -> Run:
    while agent.advance(run.pk, "test|1|x"):
        pass
    return Run.objects.get(pk=run.pk)


def frames_until(socket, marker: str, limit: int = 8) -> list[str]:
    frames = [socket.receive_text()]
    while marker not in frames[-1] and len(frames) < limit:
        frames.append(socket.receive_text())
    return frames


def approval_forms(frame: str) -> list[str]:
    return re.findall(r'hx-post="([^"]+/(?:approve|deny)/)"', frame)


def csrf_header(client: Client, run: Run) -> str:
    """The CSRF token that base.html puts in <body hx-headers>, which htmx sends with every request."""
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    return html.unescape(re.search(r"hx-headers='([^']*)'", page).group(1)).split('"X-CSRFToken": "')[1].split('"')[0]


def test_each_step_is_pushed_to_the_run_page_socket(reader, open_socket, viewer_user) -> None:
    run = queued_run(reader)
    watcher = open_socket(viewer_user, path=f"/ws/runs/{run.pk}/")
    other = open_socket(viewer_user, path="/ws/runs/999999/")
    assert watcher.connected and other.connected
    while agent.advance(run.pk, "test|1|x"):
        pass
    frames = [watcher.receive_text()]  # one per step: routed, model, tool, model
    while "Completed" not in frames[-1] and len(frames) < 8:
        frames.append(watcher.receive_text())
    assert len(frames) >= 3
    assert all('id="transcript"' in f and 'hx-swap-oob="true"' in f for f in frames)
    assert "shell__run_command" in frames[-1] and "It is Linux." in frames[-1] and "Completed" in frames[-1]
    assert other.receives_nothing()


def test_nobody_watching_means_no_rendering_and_a_late_watcher_gets_the_whole_transcript(
    reader, open_socket, viewer_user, monkeypatch
) -> None:
    run = queued_run(reader)
    rendered: list[int] = []
    render = live.render_transcript
    monkeypatch.setattr(live, "render_transcript", lambda run_id, **kw: rendered.append(run_id) or render(run_id, **kw))
    while agent.advance(run.pk, "test|1|x"):
        pass
    assert rendered == []  # four steps, nobody watching: nothing rendered, nothing sent
    late = open_socket(viewer_user, path=f"/ws/runs/{run.pk}/")
    snapshot = late.receive_text()
    assert "It is Linux." in snapshot and "Completed" in snapshot and 'hx-swap-oob="true"' in snapshot


def test_an_anonymous_socket_to_a_run_is_closed(reader, open_socket) -> None:
    run = queued_run(reader)
    assert not open_socket(None, path=f"/ws/runs/{run.pk}/").connected


def test_the_run_page_shows_the_transcript_with_untrusted_output_marked(reader, viewer_client: Client) -> None:
    run = queued_run(reader)
    while agent.advance(run.pk, "test|1|x"):
        pass
    page = viewer_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "It is Linux." in page and 'class="untrusted"' in page and f'ws-connect="/ws/runs/{run.pk}/"' in page


def test_the_tasks_page_lists_runs_and_filters_them_by_status_and_operator(reader, viewer_client: Client) -> None:
    done = run_to_rest(queued_run(reader))
    waiting = queued_run(reader)

    def listed(**filters: str) -> set[int]:
        page = viewer_client.get(reverse("tasks"), filters).content.decode()
        return {run.pk for run in (done, waiting) if f'href="{reverse("run-detail", args=[run.pk])}"' in page}

    assert done.status == RunStatus.COMPLETED
    assert listed() == {done.pk, waiting.pk}
    assert listed(status="completed") == {done.pk}
    assert listed(status="queued") == {waiting.pk}
    assert listed(operator=reader.name) == {done.pk}  # a queued run has no Operator until it is routed
    assert listed(operator="nobody") == set()


def test_an_approver_watching_gets_working_approve_and_deny_forms_pushed_with_the_request(
    fixer, open_socket, approver_user, woken_runs
) -> None:
    run = queued_run(fixer)
    watcher = open_socket(approver_user, path=f"/ws/runs/{run.pk}/")
    assert watcher.connected
    watcher.receive_text()  # the transcript as it stood: queued
    assert run_to_rest(run).status == RunStatus.AWAITING_APPROVAL
    frame = frames_until(watcher, "Waiting for")[-1]
    request = AccessRequest.objects.get(run_id=run.pk)
    approve, deny = reverse("request-approve", args=[request.pk]), reverse("request-deny", args=[request.pk])
    assert approval_forms(frame) == [approve, deny] and 'hx-swap-oob="true"' in frame

    # Posted as htmx posts them: no csrf field in the pushed form, the token from <body hx-headers>.
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver_user)
    token = csrf_header(client, run)
    assert client.post(approve, {"scope": "call"}, headers={"HX-Request": "true"}).status_code == 403
    answer = client.post(approve, {"scope": "call"}, headers={"HX-Request": "true", "X-CSRFToken": token})
    assert answer.status_code == 200
    request.refresh_from_db()
    assert request.status == "approved" and request.decided_by == approver_user and woken_runs == [run.pk]


def test_a_late_approver_gets_the_forms_in_the_first_frame_and_deny_works_from_it(
    fixer, open_socket, approver_user, woken_runs
) -> None:
    run = queued_run(fixer)
    assert run_to_rest(run).status == RunStatus.AWAITING_APPROVAL
    snapshot = open_socket(approver_user, path=f"/ws/runs/{run.pk}/").receive_text()
    request = AccessRequest.objects.get(run_id=run.pk)
    deny = reverse("request-deny", args=[request.pk])
    assert approval_forms(snapshot) == [reverse("request-approve", args=[request.pk]), deny]
    client = Client(enforce_csrf_checks=True)
    client.force_login(approver_user)
    headers = {"HX-Request": "true", "X-CSRFToken": csrf_header(client, run)}
    assert client.post(deny, {"reason": "not now"}, headers=headers).status_code == 200
    request.refresh_from_db()
    assert request.status == "denied" and request.decision_reason == "not now"


def test_a_viewer_watching_sees_the_pending_request_without_approval_forms(
    fixer, open_socket, viewer_user, approver_user
) -> None:
    run = queued_run(fixer)
    viewer = open_socket(viewer_user, path=f"/ws/runs/{run.pk}/")
    approver = open_socket(approver_user, path=f"/ws/runs/{run.pk}/")
    viewer.receive_text(), approver.receive_text()
    run_to_rest(run)
    seen, decidable = frames_until(viewer, "Waiting for")[-1], frames_until(approver, "Waiting for")[-1]
    assert "Waiting for" in seen and approval_forms(seen) == [] and "Approve" not in seen
    assert len(approval_forms(decidable)) == 2
    late = open_socket(viewer_user, path=f"/ws/runs/{run.pk}/").receive_text()
    assert "Waiting for" in late and approval_forms(late) == []


def test_under_four_eyes_the_person_who_started_the_run_is_offered_only_deny(
    fixer, open_socket, approver_user, admin_user
) -> None:
    update_site_settings(actor=admin_user, four_eyes_approvals=True)
    run = queued_run(fixer)
    Run.objects.filter(pk=run.pk).update(started_by=approver_user)
    run_to_rest(run)
    deny = reverse("request-deny", args=[AccessRequest.objects.get(run_id=run.pk).pk])
    refusal = f"Four-eyes approvals are on: you started run #{run.pk}"
    starter = open_socket(approver_user, path=f"/ws/runs/{run.pk}/")
    other = open_socket(admin_user, path=f"/ws/runs/{run.pk}/")
    assert approval_forms(starter.receive_text()) == [deny] and len(approval_forms(other.receive_text())) == 2
    live.publish_run(run.pk)  # a push as a step sends it (no transaction open: sent at once)
    pushed_to_starter, pushed_to_other = starter.receive_text(), other.receive_text()
    assert refusal in pushed_to_starter and approval_forms(pushed_to_starter) == [deny]
    assert refusal not in pushed_to_other and len(approval_forms(pushed_to_other)) == 2
    client = Client()
    client.force_login(approver_user)
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert refusal in page and approval_forms(page) == [deny]
    update_site_settings(actor=admin_user, four_eyes_approvals=False)
    page = client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert refusal not in page and len(approval_forms(page)) == 2


def test_a_finished_run_shows_cost_and_duration_per_step_and_call_with_audit_links(
    reader, viewer_client: Client
) -> None:
    run = run_to_rest(queued_run(reader))
    Step.objects.filter(run=run).update(cost=Decimal("0.001234"), duration_ms=4321, latency_ms=1234)
    ToolCall.objects.filter(run=run).update(duration_ms=987)
    Run.objects.filter(pk=run.pk).update(cost=0)
    page = viewer_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert f"{run.tokens} tokens · $0.0000" in page  # the run's total, shown even when nothing was charged
    assert page.count("$0.0012") == 2 and page.count("step 4321 ms") == 2 and "model 1234 ms" in page
    assert "987 ms" in page
    link = f"{reverse('audit')}?run={run.pk}&amp;tool=shell__run_command"
    assert f'href="{link}"' in page
    audit = viewer_client.get(html.unescape(link)).content.decode()
    assert "shell__run_command" in audit and "tool_call" in audit


def test_a_run_whose_call_was_denied_is_not_plain_green_and_the_call_says_why(
    fixer, admin_user, admin_client: Client, woken_runs
) -> None:
    from jit import services as jit

    run = run_to_rest(queued_run(fixer))
    assert run.status == RunStatus.AWAITING_APPROVAL
    page = admin_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert "Cancel</button>" in page  # a run that can still stop offers Cancel
    jit.deny(AccessRequest.objects.get(run_id=run.pk).pk, actor=admin_user, reason="not now")
    run = run_to_rest(run)
    assert run.status == RunStatus.COMPLETED
    page = admin_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert '<strong class="caution">Completed</strong>' in page and "1 call denied or not run" in page
    assert '<strong class="caution">Denied</strong>' in page
    assert "Cancel</button>" not in page  # a finished run has nothing to cancel


def test_a_run_whose_calls_all_ran_is_green_and_its_live_push_drops_cancel(reader, viewer_client: Client) -> None:
    run = run_to_rest(queued_run(reader))
    page = viewer_client.get(reverse("run-detail", args=[run.pk])).content.decode()
    assert '<strong class="ok">Completed</strong>' in page and "denied or not run" not in page
    assert "Cancel</button>" not in page
    pushed = live.render_transcript(run.pk)
    assert "Completed</strong>" in pushed and "Cancel</button>" not in pushed
