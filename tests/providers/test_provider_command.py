"""`manage.py providers`: scripted provider setup against a real (fake-wire) endpoint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from providers.choices import CheckStatus, ProviderKind
from providers.models import Provider
from tests.conftest import ROOT, process_env
from tests.fakes.llm import FakeLLMServer, status, text, tool_call

KEY = "sk-test-9c1e5a7b3d2f4e60"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _admin(admin_user: object) -> None:
    """Command-line actions are done as the first admin."""


@pytest.fixture
def fake() -> FakeLLMServer:
    with FakeLLMServer([text("pong")], models=["small-1", "large-2"]) as server:
        yield server


def run(*args: str, stdin: str | None = None) -> str:
    out = StringIO()
    if stdin is not None:
        old = sys.stdin
        sys.stdin = StringIO(stdin)
    try:
        call_command("providers", *args, stdout=out)
    finally:
        if stdin is not None:
            sys.stdin = old
    return out.getvalue()


def add(name: str, url: str, *extra: str, stdin: str | None = None) -> str:
    return run("add", "--name", name, "--kind", "openai_compatible", "--base-url", url, *extra, stdin=stdin)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_add_with_key_from_env_stores_it_encrypted_and_never_lists_it(
    fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    add("lab", fake.url + "/v1", "--api-key-env", "MY_KEY", "--default-model", "small-1")
    provider = Provider.objects.get(name="lab")
    assert provider.api_key == KEY
    listed = run("list", "--json")
    assert KEY not in listed
    (row,) = json.loads(listed)
    assert row["name"] == "lab" and row["api_key"] == "set" and row["endpoint"] == fake.url + "/v1"
    assert fake.requests == [], "adding a provider never contacts the endpoint"


def test_add_reads_the_key_from_stdin(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1", "--api-key-stdin", stdin=KEY + "\n")
    assert Provider.objects.get(name="lab").api_key == KEY


@pytest.mark.parametrize("kind", ProviderKind.values)
def test_every_kind_can_be_added_before_its_host_is_up(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", KEY)
    run(
        "add",
        "--name",
        f"k-{kind}".replace("_", "-"),
        "--kind",
        kind,
        "--base-url",
        f"http://127.0.0.1:{closed_port()}/",
        "--api-key-env",
        "K",
    )
    assert Provider.objects.get(kind=kind).last_test_status == CheckStatus.UNTESTED


def test_kind_default_endpoint_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    run("add", "--name", "ollama", "--kind", "ollama")
    assert Provider.objects.get(name="ollama").endpoint == "http://localhost:11434"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "no_such_kind"], "kind: Unknown kind 'no_such_kind'"),
        (["--kind", "openai_compatible", "--base-url", "not a url"], "base_url: Enter an http:// or https:// URL."),
        (
            ["--kind", "openai_compatible", "--base-url", "ftp://nas.lan/v1"],
            "base_url: Enter an http:// or https:// URL.",
        ),
        (["--kind", "openai_compatible"], "base_url: An endpoint URL is required"),
        (["--kind", "anthropic"], "api_key: An API key is required for Anthropic"),
        (["--kind", "openai"], "api_key: An API key is required for OpenAI"),
    ],
)
def test_bad_input_is_refused_naming_the_field(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(".", r"\.")):
        run("add", "--name", "bad", *args)
    assert not Provider.objects.exists()


def test_duplicate_name_is_refused(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1")
    with pytest.raises(CommandError, match="name: Provider with this Name already exists"):
        add("lab", fake.url + "/v1")


def test_unset_key_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET", raising=False)
    with pytest.raises(CommandError, match="NOT_SET is not set"):
        run("add", "--name", "x", "--kind", "openai", "--api-key-env", "NOT_SET")


def test_models_lists_what_the_endpoint_offers(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1")
    assert run("models", "lab").split() == ["large-2", "small-1"]
    assert json.loads(run("models", "lab", "--json")) == ["large-2", "small-1"]


def test_models_of_an_unreachable_endpoint_says_so() -> None:
    add("down", f"http://127.0.0.1:{closed_port()}/v1")
    with pytest.raises(CommandError, match="down: unreachable: Cannot reach"):
        run("models", "down")


def test_test_sends_one_completion_and_records_success(fake: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", KEY)
    add("lab", fake.url + "/v1", "--api-key-env", "K", "--default-model", "small-1")
    out = run("test", "lab")
    assert out.startswith("lab: OK, small-1 answered in") and "'pong'" in out
    (request,) = fake.chat_requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    provider = Provider.objects.get(name="lab")
    assert provider.last_test_status == CheckStatus.OK and provider.last_tested_at is not None


def test_test_of_a_refused_key_fails_and_is_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", KEY)
    with FakeLLMServer([status(401)]) as fake:
        add("lab", fake.url + "/v1", "--api-key-env", "K", "--default-model", "m")
        with pytest.raises(CommandError, match="lab: authentication failed"):
            run("test", "lab")
    assert Provider.objects.get(name="lab").last_test_status == CheckStatus.FAILED


def test_test_of_an_unreachable_endpoint_fails_within_the_timeout() -> None:
    add("down", f"http://127.0.0.1:{closed_port()}/v1", "--default-model", "m")
    with pytest.raises(CommandError, match="down: unreachable"):
        run("test", "down", "--timeout", "5")


def test_test_without_any_model_says_what_to_do(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1")
    with pytest.raises(CommandError, match="has no default model"):
        run("test", "lab")


def test_test_tools_reports_a_well_formed_tool_call(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeLLMServer([tool_call("get_current_time", {"timezone": "UTC"}), text("no tools here")]) as fake:
        add("lab", fake.url + "/v1", "--default-model", "m")
        assert "well-formed tool call" in run("test-tools", "lab")
        with pytest.raises(CommandError, match="answered in text instead of calling the tool"):
            run("test-tools", "lab")


def test_test_tools_flags_malformed_arguments() -> None:
    with FakeLLMServer([tool_call("get_current_time", "{timezone: UTC")]) as fake:
        add("lab", fake.url + "/v1", "--default-model", "m")
        with pytest.raises(CommandError, match="malformed arguments"):
            run("test-tools", "lab")


def test_remove(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1")
    assert run("remove", "lab").strip() == "Removed provider lab."
    assert not Provider.objects.exists()
    with pytest.raises(CommandError, match="No provider named 'lab'"):
        run("remove", "lab")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_key_never_appears_in_argv_output_or_logs() -> None:
    """A real command-line session: the endpoint echoes the key back in its 401; nothing shows it."""
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}}
    with FakeLLMServer([status(401, body=json.dumps(body))]) as fake:
        env = process_env(VIGILUS_TEST_KEY=KEY, VIGILUS_LOG_LEVEL="DEBUG")
        outputs = []
        for args in (
            [
                "add",
                "--name",
                "lab",
                "--kind",
                "openai_compatible",
                "--base-url",
                fake.url + "/v1",
                "--api-key-env",
                "VIGILUS_TEST_KEY",
                "--default-model",
                "m",
            ],
            ["list", "--json"],
            ["test", "lab"],
        ):
            argv = [sys.executable, "manage.py", "providers", *args]
            assert KEY not in " ".join(argv)
            result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            outputs.append(result.stdout + result.stderr)
        assert "authentication failed" in outputs[2]
        assert fake.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
    for output in outputs:
        assert KEY not in output
    assert os.environ.get("VIGILUS_TEST_KEY") is None


def test_add_sets_context_windows_and_names_a_bad_one(fake: FakeLLMServer) -> None:
    add("lab", fake.url + "/v1", "--context-window", "small-1=16384", "--context-window", "large-2=4096")

    assert Provider.objects.get(name="lab").context_windows == {"small-1": 16384, "large-2": 4096}
    with pytest.raises(CommandError, match="--context-window: The context window of small-1 must be between 512"):
        add("lab2", fake.url + "/v1", "--context-window", "small-1=10")
    with pytest.raises(CommandError, match="--context-window: Write 'small-1' as model=tokens"):
        add("lab3", fake.url + "/v1", "--context-window", "small-1")
