"""Secrets that reach a run — inside the model's tool arguments, in its answer, in a tool's output — are masked
wherever the run is stored or shown, while the call itself runs with the model's own arguments."""

from __future__ import annotations

import io
import json
import secrets
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.urls import reverse

from jit import services as jit
from jit.models import AccessRequest
from operators.choices import RunStatus
from operators.models import Operator, Run, Step, ToolCall
from operators.services import run_json, submit_task
from providers.services import create_provider
from tests.conftest import WORKER_LOGS, wait_for
from tests.fakes.llm import FakeLLMServer, text, tool_call
from tools.models import Tool
from tools.services import discover_all
from vigilus.redaction import MASK

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"


@pytest.fixture
def api_key() -> str:
    return f"sk-vigilus-{secrets.token_hex(12)}"


@pytest.fixture
def operator(celery_worker: str, admin_user, model: FakeLLMServer, api_key: str):
    """An Operator whose provider holds `api_key`: a stored secret the worker learns when it calls the model."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = create_provider(
        actor=admin_user,
        name="lab",
        kind="openai_compatible",
        base_url=model.url + "/v1",
        api_key=api_key,
        default_model="m",
    )

    def make(jit_mode: str) -> Operator:
        op = Operator.objects.create(name="fixer", provider=provider, ceiling="exec", jit_mode=jit_mode)
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make


def settle(run: Run, statuses: tuple[str, ...]) -> Run:
    wait_for(lambda: Run.objects.get(pk=run.pk).status in statuses, timeout=60, what=f"run #{run.pk} {statuses}")
    return Run.objects.get(pk=run.pk)


def command_output(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        call_command(*args, stdout=out)
    return out.getvalue()


def everything_shown(run: Run, client, model: FakeLLMServer, worker: str) -> dict[str, str]:
    """Every place a person or a model meets the run, as text."""
    return {
        "run JSON": json.dumps(run_json(run), default=str),
        "stored messages": json.dumps(Run.objects.get(pk=run.pk).messages),
        "step texts": " ".join(Step.objects.filter(run=run).values_list("text", flat=True)),
        "run page": client.get(reverse("run-detail", args=[run.pk])).content.decode(),
        "runs show --json": command_output("runs", "show", str(run.pk), "--json"),
        "jit list": command_output("jit", "list", "--all", "--json"),
        "audit export": command_output("audit", "export", "--format", "jsonl"),
        "later model requests": json.dumps([r.body["messages"] for r in model.chat_requests[1:]]),
        "worker log": WORKER_LOGS[worker].read_text(errors="replace"),
    }


def test_a_stored_secret_in_a_lenient_calls_arguments_runs_but_is_never_shown(
    operator, model, api_key, admin_client, celery_worker, tmp_path
) -> None:
    canary = tmp_path / "written"
    model.script(
        tool_call(SHELL, {"command": f"echo {api_key} > {canary}"}),
        text(f"I wrote the key {api_key} to the file."),
    )
    run = settle(submit_task("write the key down", operator=operator("lenient")), RunStatus.finished())
    assert run.status == RunStatus.COMPLETED
    assert canary.read_text().strip() == api_key  # the call ran with the model's own arguments
    (call,) = run_json(run)["tool_calls"]
    assert call["arguments"] == {"command": f"echo {MASK} > {canary}"}
    assert run.answer == f"I wrote the key {MASK} to the file."
    for place, shown in everything_shown(run, admin_client, model, celery_worker).items():
        assert api_key not in shown, f"the secret is shown in the {place}"
    assert MASK in json.dumps(model.chat_requests[1].body["messages"])  # the model gets the mask where it was


def test_a_strict_calls_request_shows_the_mask_and_the_approved_call_runs_the_real_arguments(
    operator, model, api_key, admin_user, admin_client, celery_worker, tmp_path
) -> None:
    canary = tmp_path / "approved"
    model.script(tool_call(SHELL, {"command": f"echo {api_key} > {canary}"}), text("done"))
    run = settle(submit_task("write the key down", operator=operator("strict")), (RunStatus.AWAITING_APPROVAL,))
    request = AccessRequest.objects.get(run_id=run.pk)
    assert api_key not in json.dumps(request.arguments) and MASK in request.arguments["command"]
    approvals = admin_client.get(reverse("approvals")).content.decode()
    assert MASK in approvals and api_key not in approvals
    jit.approve(request.pk, actor=admin_user)
    run = settle(run, RunStatus.finished())
    assert run.status == RunStatus.COMPLETED and canary.read_text().strip() == api_key
    for place, shown in everything_shown(run, admin_client, model, celery_worker).items():
        assert api_key not in shown, f"the secret is shown in the {place}"


def test_the_model_arguments_are_sealed_at_rest(operator, model, api_key, tmp_path) -> None:
    model.script(tool_call(SHELL, {"command": f"echo {api_key} > {tmp_path / 'x'}"}), text("done"))
    run = settle(submit_task("write the key down", operator=operator("lenient")), RunStatus.finished())
    call = ToolCall.objects.get(run=run)
    assert call.sealed_arguments == {"command": f"echo {api_key} > {tmp_path / 'x'}"}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT sealed_arguments, arguments FROM operators_toolcall WHERE id = %s", [call.pk])
        stored = " ".join(str(value) for value in cursor.fetchone())
    assert api_key not in stored


def test_a_call_without_secrets_keeps_no_sealed_copy(operator, model) -> None:
    model.script(tool_call(SHELL, {"command": "uname -s"}), text("Linux"))
    run = settle(submit_task("which kernel?", operator=operator("lenient")), RunStatus.finished())
    call = ToolCall.objects.get(run=run)
    assert call.sealed_arguments is None and call.arguments == {"command": "uname -s"}


def test_a_secret_in_a_celery_task_failure_is_masked_in_the_worker_log(celery_worker) -> None:
    from vigilus.celery import app

    secret = f"Zq{secrets.token_hex(10)}"
    app.send_task("operators.tasks.advance_run", args=[f"mysql --password {secret}"])  # in the exception's message
    log = WORKER_LOGS[celery_worker]
    wait_for(lambda: "raised unexpected" in log.read_text(errors="replace"), what="the task's failure in the log")
    assert secret not in log.read_text(errors="replace")


def test_a_credential_typed_into_a_task_is_masked_before_it_is_stored_or_sent(operator, model) -> None:
    model.script(text("I will not need it."))
    run = settle(
        submit_task("check the backups; the db password=hunter2-lab-99", operator=operator("lenient")),
        RunStatus.finished(),
    )
    assert run.task == f"check the backups; the db password={MASK}"
    first_request = json.dumps(model.chat_requests[0].body["messages"])
    assert "hunter2-lab-99" not in first_request and MASK in first_request


# Each credential shape of the issue, inside a command line the model writes: the command runs with the value, and
# the value is shown nowhere. `echo` writes the line to a file, which proves what ran.
SHAPES = [
    "mysql --password {S} -h db",
    "mysql --password={S} -h db",
    "mysql -u root -p{S} -h db",
    "sshpass -p {S} ssh admin@nas",
    "curl -u admin:{S} http://nas/api",
    'curl -H "Authorization: Token {S}" http://nas/api',
    "restic -r sftp://backup:{S}@nas/srv/restic snapshots",
    "gh api --token {S} /user",
    "tool --api-key {S} list",
    "PGPASSWORD={S} psql -h db",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_credential_shape_in_a_calls_arguments_runs_but_is_never_shown(
    shape, operator, model, admin_client, celery_worker, tmp_path
) -> None:
    value = f"Zq{secrets.token_hex(8)}"
    line = shape.format(S=value)
    canary = tmp_path / "line"
    model.script(tool_call(SHELL, {"command": f"echo '{line}' > {canary}"}), text("noted"))
    run = settle(submit_task("note the command", operator=operator("lenient")), RunStatus.finished())
    assert run.status == RunStatus.COMPLETED, run.error
    assert canary.read_text().strip() == line.replace("'", "")
    shown = everything_shown(run, admin_client, model, celery_worker)
    for place in ("run JSON", "stored messages", "run page", "audit export", "jit list", "worker log"):
        assert value not in shown[place], f"the secret is shown in the {place}"
    assert MASK in run_json(run)["tool_calls"][0]["arguments"]["command"]


def test_a_password_masked_by_its_shape_is_masked_in_the_models_own_words_too(
    operator, model, admin_client, celery_worker, tmp_path
) -> None:
    value = f"Zq{secrets.token_hex(8)}"
    model.script(
        tool_call(SHELL, {"command": f"echo 'mysql --password {value}' > {tmp_path / 'x'}"}, text=f"I use {value}."),
        text(f"Logged in with {value}."),
    )
    run = settle(submit_task("log in to the database", operator=operator("lenient")), RunStatus.finished())
    assert run.status == RunStatus.COMPLETED and run.answer == f"Logged in with {MASK}."
    assert Step.objects.filter(run=run).first().text == f"I use {MASK}."
    for place, shown in everything_shown(run, admin_client, model, celery_worker).items():
        assert value not in shown, f"the secret is shown in the {place}"
