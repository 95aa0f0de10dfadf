"""Vigilus against a real OpenAI-compatible server nobody here wrote: llama-cpp-python's, with SmolLM2-135M.

These tests judge the wiring, not the 135M model's answers: that each request Vigilus makes is one the server
accepts (HTTP 200), that what the server answers is read, and that a run goes through the gateway between two
model calls. Where the model's own choice would make a test a coin toss (which command to run), the first step
of a run is driven: the server is made to call the tool by name and the command is set (tests/local_models/
proxy.py). Every later request of the run is the real server's business.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command

from jit import services as jit
from operators.choices import RunStatus
from operators.models import Operator, Run
from operators.orchestrator import route
from operators.services import run_json, submit_task
from providers import client, context
from providers.choices import ProviderKind
from providers.models import Provider
from providers.services import create_provider
from tests.conftest import wait_for
from tests.local_models.environment import CONTEXT, MODEL_ALIAS
from tests.local_models.proxy import RecordingProxy
from tools.models import Tool
from tools.services import discover_all
from vigilus.services import update_site_settings

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

SHELL = "shell__run_command"
OPENAI_KINDS = [ProviderKind.OPENAI_COMPATIBLE, ProviderKind.VLLM, ProviderKind.LM_STUDIO]


def providers_command(*args: str) -> str:
    out = StringIO()
    call_command("providers", *args, stdout=out)
    return out.getvalue()


def make_provider(admin_user: User, proxy: RecordingProxy, kind: str = ProviderKind.OPENAI_COMPATIBLE) -> Provider:
    return create_provider(
        actor=admin_user,
        name=f"llama-{kind}".replace("_", "-"),
        kind=kind,
        base_url=proxy.url,
        default_model=MODEL_ALIAS,
    )


@pytest.mark.parametrize("kind", OPENAI_KINDS, ids=str)
def test_models_test_and_test_tools_succeed(kind: str, admin_user: User, proxy: RecordingProxy) -> None:
    name = f"lab-{kind}".replace("_", "-")
    providers_command("add", "--name", name, "--kind", kind, "--base-url", proxy.url, "--default-model", MODEL_ALIAS)

    assert MODEL_ALIAS in providers_command("models", name).split()
    assert providers_command("test", name).startswith(f"{name}: OK, {MODEL_ALIAS} answered")
    tools = json.loads(providers_command("test-tools", name, "--json"))

    assert tools["ok"], tools["message"]
    assert tools["message"].startswith("well-formed tool call get_current_time(")
    check = proxy.chats[-1]
    assert check.status == 200
    assert check.request["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in check.request["tools"]] == ["get_current_time"]


def test_the_orchestrator_routes_a_task_to_an_operator(admin_user: User, proxy: RecordingProxy) -> None:
    provider = make_provider(admin_user, proxy)
    disks = Operator.objects.create(name="disk-checker", description="Checks free disk space.", provider=provider)
    containers = Operator.objects.create(name="container-doctor", description="Inspects containers.", provider=provider)
    update_site_settings(actor=admin_user, orchestrator_provider=provider, orchestrator_model="")

    chosen = route("How much free disk space is left on the nas?")

    assert chosen.operator in (disks, containers)
    [asked] = proxy.chats
    assert asked.status == 200
    assert asked.request["tool_choice"] == {"type": "function", "function": {"name": "route_to_operator"}}


@pytest.fixture
def operator(celery_worker: str, admin_user: User, proxy: RecordingProxy):
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    provider = make_provider(admin_user, proxy)

    def make(ceiling: str, jit_mode: str = "strict") -> Operator:
        op = Operator.objects.create(
            name="fixer", provider=provider, ceiling=ceiling, jit_mode=jit_mode, max_steps=3, system_prompt="Be brief."
        )
        op.tools.add(Tool.objects.get(qualified_name=SHELL))
        return op

    return make


def settle(run: Run, statuses: tuple[str, ...], timeout: float = 120) -> Run:
    wait_for(lambda: Run.objects.get(pk=run.pk).status in statuses, timeout=timeout, what=f"run #{run.pk} {statuses}")
    return Run.objects.get(pk=run.pk)


def test_a_read_call_runs_through_the_gateway_and_the_next_request_is_accepted(operator, proxy: RecordingProxy) -> None:
    proxy.drive(SHELL, {"command": "uname -s"})

    run = settle(submit_task("Which kernel does this host run?", operator=operator("read_only")), RunStatus.finished())

    data = run_json(run)
    first = data["tool_calls"][0]
    assert (first["tool"], first["intent"], first["decision"], first["ok"]) == (SHELL, "read", "allowed", True)
    driven, following = proxy.chats[0], proxy.chats[1]
    assert driven.driven and driven.status == 200
    # The second model request carries the call and its result back, and the real server accepts it.
    replayed = following.request["messages"]
    assert [m["role"] for m in replayed[:4]] == ["system", "user", "assistant", "tool"]
    assert replayed[2]["content"] == "" and replayed[2]["tool_calls"][0]["function"]["name"] == SHELL
    assert "Linux" in replayed[3]["content"]
    assert following.status == 200
    assert all(chat.status == 200 for chat in proxy.chats)
    assert not run.error.startswith("the model failed"), run.error


def test_a_strict_write_waits_for_a_decision(operator, proxy: RecordingProxy, admin_user: User, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proxy.drive(SHELL, {"command": f"touch {marker}"})

    run = settle(submit_task("Create the marker file.", operator=operator("exec")), (RunStatus.AWAITING_APPROVAL,))

    assert not marker.exists()
    [call] = run_json(run)["tool_calls"]
    assert (call["intent"], call["decision"]) == ("write", "pending")
    assert len(proxy.chats) == 1  # nobody asks the model anything while the call waits
    jit.deny(call["access_request"], actor=admin_user, reason="not now")
    # The denial goes back to the model; what the model does next (answer, or ask again) is its own business.
    wait_for(lambda: len(proxy.chats) >= 2, timeout=120, what="the model to be asked again")

    assert not marker.exists()
    assert "denied by alice: not now" in proxy.chats[1].request["messages"][3]["content"]
    assert all(chat.status == 200 for chat in proxy.chats)


def test_a_conversation_longer_than_the_servers_context_is_fitted(admin_user: User, proxy: RecordingProxy) -> None:
    """A provider set to a larger window than the server runs with: the server refuses the first request as too
    long, Vigilus learns the window it states, cuts older parts of the conversation and is answered. (This chat
    format never shows tool results to the model, so the bulk here is in the model's own older texts.)"""
    provider = make_provider(admin_user, proxy)
    provider.context_windows = {MODEL_ALIAS: 4 * CONTEXT}
    provider.save()
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise the logs."}]
    for number, thought in enumerate(["Reading the big log: " + "ok " * 9000, "Now the last one."], 1):
        call = {"id": f"call{number}", "type": "function", "function": {"name": SHELL, "arguments": "{}"}}
        messages.append({"role": "assistant", "content": thought, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call{number}", "content": f"log {number} is clean"})

    answer = client.complete(provider, messages, max_tokens=8, timeout=300)

    refused, accepted = proxy.chats
    assert refused.status == 400 and "context" in json.dumps(refused.answer)
    assert accepted.status == 200
    assert answer.usage.prompt_tokens <= CONTEXT
    assert context.context_window(provider, MODEL_ALIAS) == context.Window(CONTEXT, "learned")
    sent = accepted.request["messages"]
    assert any("were cut to fit" in (m["content"] or "") for m in sent)
    assert sent[-2]["content"] == messages[-2]["content"]  # the latest step is kept whole
