"""The run page: the transcript as a person sees it, streamed live over /ws/runs/<id>/."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from operators import agent, live
from operators.models import Operator, Run
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer, text, tool_call
from tools.models import Tool
from tools.services import discover_all

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


def queued_run(operator: Operator) -> Run:
    """A run stepped by the test itself: not enqueued, so no Celery worker of the session takes it."""
    return Run.objects.create(task="which kernel?", requested_operator=operator)


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
    monkeypatch.setattr(live, "render_transcript", lambda run_id: rendered.append(run_id) or render(run_id))
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
    assert "Linux" in viewer_client.get(reverse("tasks")).content.decode() or "which kernel" in page
