"""What a person sees from `operators`, `runs` and `task`, and from the Schedules and Webhooks pages."""

from __future__ import annotations

import json
import re
import socket
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from audit.models import AuditEntry
from operators.choices import RunStatus
from operators.entrypoints import check_token
from operators.models import Operator, Run, Schedule, ToolCall, Webhook
from operators.services import submit_task
from providers.models import Provider
from providers.services import create_provider
from tests.conftest import wait_for
from tests.fakes.llm import FakeLLMServer, slow, text, tool_call
from tests.operators.test_runs import settle
from tools.models import Tool
from tools.services import discover_all

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
OPERATOR_KEYS = {
    "name", "description", "provider", "model", "tools", "ceiling", "jit_mode",
    "max_steps", "token_budget", "cost_budget", "plan_first", "enabled", "system_prompt",
}  # fmt: skip


@pytest.fixture
def lab(admin_user, model: FakeLLMServer) -> Provider:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    return create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )


@pytest.fixture
def fixer(celery_worker: str, lab: Provider):
    """Makes the one Operator `fixer` (exec ceiling, strict) with the shell tool; a worker runs its runs."""

    def make(ceiling: str = "exec", jit_mode: str = "strict", provider: Provider = lab, **fields) -> Operator:
        op = Operator.objects.create(name="fixer", provider=provider, ceiling=ceiling, jit_mode=jit_mode, **fields)
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


# --- operators add|list|show|remove -----------------------------------------------------------------


def test_an_operator_added_from_a_prompt_file_is_listed_shown_and_removed(lab, tmp_path: Path) -> None:
    prompt = tmp_path / "nas.md"
    prompt.write_text("You look after the NAS.\nNever reboot it without asking.\n")
    out = run(
        "operators", "add", "--name", "nas", "--provider", "lab", "--model", "big", "--prompt-file", str(prompt),
        "--tools", SHELL, "--ceiling", "write", "--jit", "strict", "--description", "looks after the nas",
    )  # fmt: skip
    assert out == "Added Operator nas (Write, JIT strict) with 1 tool(s).\n"
    assert Operator.objects.get(name="nas").system_prompt == prompt.read_text()

    (row,) = json.loads(run("operators", "list", "--json"))
    assert set(row) == OPERATOR_KEYS
    assert {k: row[k] for k in ("name", "provider", "model", "tools", "ceiling", "jit_mode", "description")} == {
        "name": "nas",
        "provider": "lab",
        "model": "big",
        "tools": [SHELL],
        "ceiling": "write",
        "jit_mode": "strict",
        "description": "looks after the nas",
    }
    assert row["system_prompt"] == prompt.read_text() and row["enabled"] is True
    assert json.loads(run("operators", "show", "nas", "--json")) == row
    shown = run("operators", "show", "nas").splitlines()
    assert {"name: nas", "ceiling: write", "jit_mode: strict", f"tools: ['{SHELL}']"} <= set(shown)

    assert run("operators", "remove", "nas") == "Removed Operator nas.\n"
    assert not Operator.objects.exists() and json.loads(run("operators", "list", "--json")) == []
    with pytest.raises(CommandError, match=r"^No Operator named 'nas' \(see `operators list`\)\.$"):
        run("operators", "show", "nas")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"--tools": f"{SHELL},nope__x"}, r"^tools: Unknown tool\(s\): nope__x \(see `tools list`\)\.$"),
        ({"--provider": "ghost"}, r"^--provider: no provider named 'ghost' \(see `providers list`\)\.$"),
        ({"--ceiling": "root"}, r"argument --ceiling: invalid choice: 'root'"),
        ({"--jit": "loose"}, r"argument --jit: invalid choice: 'loose'"),
        ({"--prompt-file": "/dev/null"}, r"argument --prompt-file: not allowed with argument --prompt"),
        ({"--prompt": None}, r"one of the arguments --prompt --prompt-file is required"),
        ({"--prompt": None, "--prompt-file": "/nonexistent/p.md"}, r"^--prompt-file: cannot read /nonexistent/p\.md"),
    ],
    ids=["unknown-tool", "unknown-provider", "bad-ceiling", "bad-jit", "both-prompts", "no-prompt", "unreadable"],
)
def test_bad_input_to_operators_add_names_the_problem_and_adds_nothing(lab, change, problem) -> None:
    flags = {"--name": "nas", "--provider": "lab", "--prompt": "Look after the NAS.", "--tools": SHELL} | change
    args = [part for flag, value in flags.items() if value is not None for part in (flag, value)]
    with pytest.raises(CommandError, match=problem):
        run("operators", "add", *args)
    assert not Operator.objects.exists()


def test_a_second_operator_with_the_same_name_is_refused(lab) -> None:
    run("operators", "add", "--name", "nas", "--provider", "lab", "--prompt", "first")
    with pytest.raises(CommandError, match=r"^name: an Operator named 'nas' already exists\.$"):
        run("operators", "add", "--name", "nas", "--provider", "lab", "--prompt", "second")
    assert list(Operator.objects.values_list("system_prompt", flat=True)) == ["first"]


# --- runs list|show|cancel --------------------------------------------------------------------------


def test_runs_list_and_show_give_the_completed_run_with_its_tool_calls(fixer, model) -> None:
    fixer(ceiling="read_only")
    model.script(tool_call(SHELL, {"command": "echo hello"}), text("It said hello."))
    done = settle(submit_task("say hello"), RunStatus.finished())

    (listed,) = json.loads(run("runs", "list", "--json"))
    shown = json.loads(run("runs", "show", str(done.pk), "--json"))
    assert listed == shown
    assert set(shown) >= {"id", "status", "operator", "routing_reason", "answer", "tool_calls"}
    assert (shown["id"], shown["status"], shown["operator"], shown["answer"]) == (
        done.pk,
        "completed",
        "fixer",
        "It said hello.",
    )
    assert shown["routing_reason"] == "the only enabled Operator"
    (call,) = shown["tool_calls"]
    assert (call["tool"], call["intent"], call["decision"], call["access_request"]) == (SHELL, "read", "allowed", None)

    assert run("runs", "list").split() == [f"#{done.pk}", "completed", "fixer", "say", "hello"]
    text_lines = run("runs", "show", str(done.pk)).splitlines()
    assert {"status: completed", "answer: It said hello.", f"  {SHELL} (read): allowed"} <= set(text_lines)
    with pytest.raises(CommandError, match=r"^No run #99999\.$"):
        run("runs", "show", "99999")


def test_cancelling_a_running_run_stops_it_at_its_next_step(fixer, model) -> None:
    fixer(ceiling="read_only")
    model.script(
        tool_call(SHELL, {"command": "echo one"}),
        slow(2, then=tool_call(SHELL, {"command": "echo two"})),
        tool_call(SHELL, {"command": "echo three"}),
        text("all done"),
    )
    started = submit_task("count to three")
    wait_for(lambda: len(model.chat_requests) == 2, what="the second, slow model call")
    assert Run.objects.get(pk=started.pk).status == RunStatus.RUNNING  # mid-step, not parked

    assert run("runs", "cancel", str(started.pk)) == f"Run #{started.pk} will stop at its next step.\n"

    done = settle(started, RunStatus.finished())
    assert (done.status, done.error) == (RunStatus.CANCELLED, "cancelled by a person")
    calls = {c.arguments["command"]: (c.status, c.ok) for c in ToolCall.objects.filter(run=done)}
    assert calls["echo one"] == ("done", True)
    assert calls["echo two"] == ("done", False), "the call the slow model proposed is never dispatched"
    assert ToolCall.objects.get(run=done, arguments={"command": "echo two"}).result == "not run: the run cancelled"
    outcomes = AuditEntry.objects.filter(run_id=done.pk, event="tool_call.outcome").values_list("outcome", flat=True)
    assert sorted(outcomes) == ["not_run", "succeeded"]
    assert len(model.chat_requests) == 2 and done.answer == ""


# --- task --wait --json -----------------------------------------------------------------------------


def test_task_wait_exits_cleanly_for_a_completed_run(fixer, model) -> None:
    fixer(ceiling="read_only")
    model.script(tool_call(SHELL, {"command": "uptime"}), text("Up a while."))
    data = json.loads(run("task", "how long up?", "--wait", "--json"))
    assert (data["status"], data["operator"], data["answer"]) == ("completed", "fixer", "Up a while.")


def test_task_wait_exits_cleanly_for_a_run_parked_for_approval(fixer, model, tmp_path: Path) -> None:
    fixer()
    canary = tmp_path / "x"
    model.script(tool_call(SHELL, {"command": f"touch {canary}"}), text("touched"))
    data = json.loads(run("task", "make the marker", "--wait", "--json"))
    assert data["status"] == "awaiting_approval" and not canary.exists()
    (call,) = data["tool_calls"]
    assert (call["intent"], call["decision"]) == ("write", "pending") and call["access_request"]


def closed_port_provider(admin_user) -> Provider:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return create_provider(
        actor=admin_user,
        name="gone",
        kind="openai_compatible",
        base_url=f"http://127.0.0.1:{port}/v1",
        default_model="m",
    )


@pytest.mark.parametrize("cause", ["max-steps", "closed-port"])
def test_task_wait_fails_for_a_failed_run(fixer, model, admin_user, cause: str) -> None:
    if cause == "max-steps":
        fixer(ceiling="read_only", max_steps=1)
        model.script(*(tool_call(SHELL, {"command": f"echo {i}"}) for i in range(3)))
        reason = "maximum of 1 model steps"
    else:
        fixer(ceiling="read_only", provider=closed_port_provider(admin_user))
        reason = "the model failed"
    out = StringIO()
    with pytest.raises(CommandError, match=rf"^run #\d+ failed: .*{reason}"):
        call_command("task", "do something", "--wait", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["status"] == "failed" and reason in data["error"]


# --- the Schedules and Webhooks pages ---------------------------------------------------------------


def test_an_admin_adds_and_removes_a_schedule_on_the_page(lab, admin_client) -> None:
    op = Operator.objects.create(name="watcher", provider=lab)
    form = {"name": "disk", "operator": op.pk, "cron": "hourly", "task": "check the disks"}
    response = admin_client.post("/schedules/", form, follow=True)
    assert response.redirect_chain == [("/schedules/", 302)]
    page = response.content.decode()
    assert "Added schedule disk." in page and "<td>disk</td><td>watcher</td><td><code>hourly</code>" in page
    schedule = Schedule.objects.get()
    entry = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    assert (entry.task, json.loads(entry.args)) == ("operators.tasks.run_schedule", [schedule.pk])
    assert (entry.crontab.minute, entry.crontab.hour, entry.crontab.day_of_week) == ("0", "*", "*")

    response = admin_client.post(f"/schedules/{schedule.pk}/delete/", follow=True)
    assert "No schedules yet." in response.content.decode() and "<td>disk</td>" not in response.content.decode()
    assert not Schedule.objects.exists() and not PeriodicTask.objects.filter(pk=entry.pk).exists()


def test_a_bad_cron_on_the_schedules_page_is_shown_on_the_form(lab, admin_client) -> None:
    op = Operator.objects.create(name="watcher", provider=lab)
    form = {"name": "disk", "operator": op.pk, "cron": "every tuesday", "task": "check the disks"}
    response = admin_client.post("/schedules/", form)
    assert response.status_code == 200 and "is not five cron fields" in response.content.decode()
    assert not Schedule.objects.exists() and not PeriodicTask.objects.exists()


def test_viewers_are_refused_the_schedules_and_webhooks_pages(lab, admin_user, viewer_client) -> None:
    """What the code does: both pages are admin-only, listing included (403, not a read-only view)."""
    op = Operator.objects.create(name="watcher", provider=lab)
    from operators.entrypoints import add_schedule, add_webhook

    schedule = add_schedule(name="disk", operator=op, cron="hourly", task="check", actor=admin_user)
    webhook, _ = add_webhook(name="alerts", operator=op, actor=admin_user)
    assert viewer_client.get("/schedules/").status_code == 403
    assert viewer_client.get("/webhooks/").status_code == 403
    new = {"name": "mine", "operator": op.pk, "cron": "hourly", "task": "t", "instructions": ""}
    assert viewer_client.post("/schedules/", new).status_code == 403
    assert viewer_client.post("/webhooks/", new).status_code == 403
    assert viewer_client.post(f"/schedules/{schedule.pk}/delete/").status_code == 403
    assert viewer_client.post(f"/webhooks/{webhook.pk}/delete/").status_code == 403
    assert list(Schedule.objects.values_list("name", flat=True)) == ["disk"]
    assert list(Webhook.objects.values_list("name", flat=True)) == ["alerts"]
    assert PeriodicTask.objects.count() == 1


def test_a_webhook_added_on_the_page_shows_its_url_and_token_once(lab, admin_client) -> None:
    op = Operator.objects.create(name="watcher", provider=lab)
    response = admin_client.post("/webhooks/", {"name": "alerts", "operator": op.pk, "instructions": "Look."})
    page = response.content.decode()
    assert response.status_code == 200 and "alerts is ready" in page
    assert "URL: <code>http://testserver/hooks/alerts/</code>" in page
    token = re.search(r"Token \(shown once\): <code>([^<]+)</code>", page).group(1)
    webhook = Webhook.objects.get()
    assert len(token) >= 32 and check_token(webhook, token) and token not in webhook.token_hash

    again = admin_client.get("/webhooks/").content.decode()
    assert "<td>alerts</td><td>watcher</td>" in again
    assert token not in again and "shown once" not in again

    admin_client.post(f"/webhooks/{webhook.pk}/delete/")
    assert not Webhook.objects.exists() and "No webhooks yet." in admin_client.get("/webhooks/").content.decode()


def test_a_paused_schedule_is_kept_but_neither_fires_nor_runs_until_resumed(lab, admin_client) -> None:
    from operators.entrypoints import run_schedule

    Operator.objects.create(name="watcher", provider=lab)
    run("schedules", "add", "--name", "disk", "--operator", "watcher", "--cron", "hourly", "--task", "check")
    schedule = Schedule.objects.get()

    page = admin_client.post(f"/schedules/{schedule.pk}/toggle/", follow=True).content.decode()
    assert "Schedule disk paused." in page and "disk (paused)" in page and ">Resume</button>" in page
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is False  # beat leaves it out
    assert run_schedule(schedule.pk) is None and not Run.objects.exists()  # a fire already queued does nothing

    assert run("schedules", "resume", "disk") == "Resumed schedule disk.\n"
    assert PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled is True
    assert run_schedule(schedule.pk) is not None and Run.objects.count() == 1
    assert run("schedules", "pause", "disk") == "Paused schedule disk.\n"
    assert json.loads(run("schedules", "list", "--json"))[0]["enabled"] is False
    events = list(AuditEntry.objects.filter(target="disk").order_by("sequence").values_list("event", flat=True))
    assert events[1:] == ["schedule.disabled", "schedule.enabled", "schedule.disabled"]
    with pytest.raises(CommandError, match="No schedule named 'nope'"):
        run("schedules", "pause", "nope")


def test_a_paused_webhook_answers_like_an_unknown_one_until_resumed(
    lab, admin_client, viewer_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from operators.tasks import advance_run

    submitted: list[int] = []
    # Kept from the session's live worker: a run it stepped while this test's teardown empties the tables could
    # deadlock the flush on PostgreSQL.
    monkeypatch.setattr(advance_run, "delay", submitted.append)
    Operator.objects.create(name="watcher", provider=lab)
    out = run("webhooks", "add", "--name", "alerts", "--operator", "watcher")
    token = out.rsplit(": ", 1)[1].strip()
    webhook = Webhook.objects.get()

    def post_alert() -> int:
        return viewer_client.post(
            "/hooks/alerts/", data="{}", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}"
        ).status_code

    assert viewer_client.post(f"/webhooks/{webhook.pk}/toggle/").status_code == 403  # admins only
    page = admin_client.post(f"/webhooks/{webhook.pk}/toggle/", follow=True).content.decode()
    assert "Webhook alerts paused." in page and "alerts (paused: answers 403)" in page
    assert post_alert() == 403 and not Run.objects.exists()
    assert run("webhooks", "resume", "alerts") == "Resumed webhook alerts.\n"
    assert post_alert() == 202 and Run.objects.count() == 1  # the same token works again
    assert submitted == [Run.objects.get().pk]
    events = list(AuditEntry.objects.filter(target="alerts").order_by("sequence").values_list("event", flat=True))
    assert events[1:] == ["webhook.disabled", "webhook.enabled"]
