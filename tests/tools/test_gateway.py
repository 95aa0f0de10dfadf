"""The gateway: validate -> classify -> authorize -> audit -> dispatch -> audit, through the built-in servers."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.db import InterfaceError, connection

from audit import services as audit_services
from tools import gateway
from tools.choices import ReviewState
from tools.mcp_client import MCPClientPool
from tools.models import Tool
from tools.services import discover_all
from vigilus.redaction import remember_secret

pytestmark = pytest.mark.django_db
CORPUS = Path(__file__).with_name("sample_corpus.json")  # a copy of the contract checks' corpus


@pytest.fixture(autouse=True)
def _discovered(tmp_path: Path, settings: object) -> None:
    settings.FILESYSTEM_ROOTS = [tmp_path]
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()


def audit_events(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "vigilus.audit"]


def test_read_command_runs_and_both_audit_entries_are_written(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigilus.audit")
    result = gateway.execute("shell__run_command", {"command": "uname -s"}, reason="which kernel?")
    assert result.ok and result.decision == "allowed" and result.intent == "read"
    assert "Linux" in result.content
    decision, outcome = audit_events(caplog)
    assert (decision["event"], decision["decision"], decision["intent"]) == ("tool_call.decision", "allowed", "read")
    assert decision["reason"] == "which kernel?"
    assert (outcome["event"], outcome["outcome"]) == ("tool_call.outcome", "succeeded")


@pytest.mark.parametrize("command", ["touch {C}", "sh -c 'touch {C}'", "ls; touch {C}", "echo x > {C}"])
def test_write_and_exec_commands_are_denied_and_never_run(command: str, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    result = gateway.execute("shell__run_command", {"command": command.replace("{C}", str(canary))})
    assert not result.ok and result.decision == "denied" and result.intent in ("write", "exec")
    assert result.content.startswith("denied: ")
    assert not canary.exists()


def test_the_sample_corpus_holds(tmp_path: Path) -> None:
    cases = json.loads(CORPUS.read_text())
    for i, command in enumerate(cases["must_not_run"]):
        result = gateway.execute("shell__run_command", {"command": command.replace("{C}", str(tmp_path / f"c{i}"))})
        assert not result.ok, command
    assert list(tmp_path.iterdir()) == []
    for command in cases["must_run"]:
        result = gateway.execute("shell__run_command", {"command": command})
        assert result.ok and result.decision == "allowed", (command, result.content)


def test_arguments_that_do_not_fit_the_schema_are_refused_naming_the_field(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vigilus.audit")
    result = gateway.execute("shell__run_command", {"cmd": "ls"})
    assert not result.ok and result.decision == "invalid"
    assert "'command' is a required property" in result.content
    result = gateway.execute("shell__run_command", {"command": 42})
    assert "invalid arguments at command" in result.content
    entries = [(e["event"], e["decision"], e.get("outcome")) for e in audit_events(caplog)]
    assert entries == [("tool_call.decision", "invalid", None), ("tool_call.outcome", "invalid", "not_run")] * 2


def test_unknown_and_withdrawn_tools_are_refused() -> None:
    assert gateway.execute("nope__tool", {}).decision == "unavailable"
    Tool.objects.filter(qualified_name="filesystem__stat").update(review_state=ReviewState.CHANGED)
    result = gateway.execute("filesystem__stat", {"path": "/tmp"})
    assert result.decision == "withdrawn" and "awaits a person's review" in result.content


def test_no_audit_entry_means_no_call(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatched = []
    monkeypatch.setattr(MCPClientPool, "call_tool", lambda *a, **k: dispatched.append(a))

    def refuse(event: str, **details: object) -> None:
        if event == "tool_call.decision":
            raise audit_services.AuditWriteError("disk full")

    monkeypatch.setattr(gateway, "record", refuse)
    result = gateway.execute("shell__run_command", {"command": "uptime"})
    assert not result.ok and result.decision == "error" and "audit entry could not be written" in result.content
    assert dispatched == []


def test_output_is_capped_with_the_truncation_marked(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * (gateway.OUTPUT_CAP * 2))
    result = gateway.execute("filesystem__read_file", {"path": str(big), "max_bytes": gateway.OUTPUT_CAP * 3})
    assert result.truncated and "[output truncated:" in result.content
    assert len(result.content) < gateway.OUTPUT_CAP + 200


def test_secrets_in_tool_output_are_redacted(tmp_path: Path) -> None:
    secret = "sk-live-output-7c6b5a4d3e"
    remember_secret(secret)
    (tmp_path / "env").write_text(f"API_KEY={secret}\n")
    result = gateway.execute("shell__run_command", {"command": f"cat {tmp_path / 'env'}"})
    assert result.ok and secret not in result.content and "[REDACTED]" in result.content


def test_the_data_directory_is_refused_at_every_intent(settings: object) -> None:
    key = Path(settings.DATA_DIR) / "encryption.key"
    settings.FILESYSTEM_ROOTS = [Path(settings.DATA_DIR).parent]  # a root that contains the data directory
    result = gateway.execute("shell__run_command", {"command": f"cat {key}"})
    assert not result.ok and key.read_text().strip() not in result.content
    result = gateway.execute("filesystem__read_file", {"path": str(key)})
    assert not result.ok and key.read_text().strip() not in result.content


@pytest.mark.parametrize(
    "command", ["cat /proc/1/environ", "cat /proc/self/environ", "tr '\\0' '\\n' < /proc/1/environ"]
)
def test_process_environments_are_refused(command: str) -> None:
    """They hold Vigilus's own secrets: refused even where the command is a plain read."""
    result = gateway.execute("shell__run_command", {"command": command})
    assert not result.ok
    if result.intent == "read":
        assert "process environments" in result.content


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"path": {"$ref": "#/definitions/nowhere"}}},
        {"type": "object", "properties": {"path": {"type": "string", "pattern": "\\p{L}+"}}},
    ],
)
def test_a_schema_the_validator_cannot_use_is_a_tool_error_not_a_crash(schema: dict) -> None:
    Tool.objects.filter(qualified_name="filesystem__stat").update(input_schema=schema)
    result = gateway.execute("filesystem__stat", {"path": "/tmp"})
    assert not result.ok and result.decision == "invalid"
    assert result.content.startswith("the tool's own input schema cannot be used: ")


def test_a_tool_whose_schema_changes_is_held_to_the_new_schema_at_once() -> None:
    assert gateway.execute("filesystem__stat", {"path": "/tmp"}).decision == "allowed"
    schema = {"type": "object", "properties": {"path": {"type": "string", "maxLength": 2}}, "required": ["path"]}
    Tool.objects.filter(qualified_name="filesystem__stat").update(input_schema=schema)  # rediscovered, say
    result = gateway.execute("filesystem__stat", {"path": "/tmp"})
    assert result.decision == "invalid" and "is too long" in result.content
    Tool.objects.filter(qualified_name="filesystem__stat").update(input_schema={"type": "object"})
    assert gateway.execute("filesystem__stat", {"path": "/tmp"}).decision == "allowed"


def test_a_calls_own_timeout_widens_how_long_the_gateway_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    def call_tool(self: object, spec: object, name: str, arguments: dict, *, timeout: float, **kwargs: object):
        waited.append(timeout)
        raise gateway.MCPClientError("stopped here")

    monkeypatch.setattr(MCPClientPool, "call_tool", call_tool)
    gateway.execute("shell__run_command", {"command": "uptime", "timeout": 300})
    gateway.execute("shell__run_command", {"command": "uptime"})
    assert waited == [305.0, gateway.DEFAULT_TIMEOUT]


def test_a_stored_secret_that_cannot_be_decrypted_ends_the_call_not_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's env was encrypted with a key this instance does not have (a restored backup, a lost key file):
    the call comes back as a tool error naming the problem, is audited, and nothing is dispatched."""
    dispatched = []
    monkeypatch.setattr(MCPClientPool, "call_tool", lambda *a, **k: dispatched.append(a))
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"API_KEY": "from-another-instance-1234"}').decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tools_mcpserver SET env = %s WHERE name = 'shell'", [foreign])
    caplog.set_level(logging.INFO, logger="vigilus.audit")

    result = gateway.execute("shell__run_command", {"command": "uptime"})

    assert not result.ok and result.decision == "error"
    assert result.content.startswith("the call was not run: ")
    assert "cannot be decrypted with the configured encryption keys" in result.content
    assert dispatched == []
    (entry,) = audit_events(caplog)
    assert (entry["event"], entry["outcome"], entry["decision"]) == ("tool_call.outcome", "not_run", "error")
    assert entry["tool"] == "shell__run_command" and "SecretDecryptionError" in entry["error"]


def test_a_failing_policy_ends_the_call_with_a_tool_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dispatched = []
    monkeypatch.setattr(MCPClientPool, "call_tool", lambda *a, **k: dispatched.append(a))

    def broken(**kwargs: object) -> None:
        raise LookupError("no site settings row")

    monkeypatch.setattr(gateway, "authorize", broken)
    caplog.set_level(logging.INFO, logger="vigilus.audit")
    result = gateway.execute("shell__run_command", {"command": "uptime"})
    assert not result.ok and result.decision == "error"
    assert "LookupError: no site settings row" in result.content
    assert dispatched == []
    (entry,) = audit_events(caplog)
    assert (entry["event"], entry["outcome"], entry["decision"]) == ("tool_call.outcome", "not_run", "error")


def test_an_unwritable_audit_entry_for_a_refused_call_ends_the_call_not_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(event: str, **details: object) -> None:
        raise audit_services.AuditWriteError("disk full")

    monkeypatch.setattr(gateway, "record", refuse)
    result = gateway.execute("nope__tool", {})
    assert not result.ok and result.decision == "error" and "disk full" in result.content


@pytest.mark.parametrize("failure", [audit_services.AuditWriteError("disk full"), InterfaceError("disk full")])
def test_a_call_that_ran_is_reported_even_when_its_outcome_entry_cannot_be_written(
    failure: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    written = []

    def outcome_refused(event: str, **details: object) -> None:
        if event == "tool_call.outcome":
            raise failure
        written.append(event)

    monkeypatch.setattr(gateway, "record", outcome_refused)
    result = gateway.execute("shell__run_command", {"command": "uname -s"})
    assert result.ok and result.decision == "allowed" and "Linux" in result.content
    assert written == ["tool_call.decision"]  # and no second outcome saying it did not run
    assert "audit entry for the outcome (succeeded) of a call to shell__run_command failed" in caplog.text
    assert "disk full" in caplog.text


def test_a_call_that_ran_is_reported_as_such_when_its_result_cannot_be_handled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unreadable(result: object) -> str:
        raise AttributeError("'NoneType' object has no attribute 'text'")

    monkeypatch.setattr(gateway, "render_content", unreadable)
    caplog.set_level(logging.INFO, logger="vigilus.audit")
    result = gateway.execute("shell__run_command", {"command": "uname -s"})
    assert not result.ok and result.decision == "allowed"
    assert result.content.startswith("the call ran, but Vigilus could not handle its result (AttributeError")
    assert [e["event"] for e in audit_events(caplog)] == ["tool_call.decision"]


def test_a_pool_that_fails_outright_is_a_failed_call(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def call_tool(*args: object, **kwargs: object) -> None:
        raise RuntimeError("cannot schedule new futures after shutdown")

    monkeypatch.setattr(MCPClientPool, "call_tool", call_tool)
    caplog.set_level(logging.INFO)
    result = gateway.execute("shell__run_command", {"command": "uptime"})
    assert not result.ok and result.decision == "allowed"
    assert result.content == "the tool failed: RuntimeError: cannot schedule new futures after shutdown"
    _decision, outcome = audit_events(caplog)
    assert (outcome["outcome"], outcome["error"]) == (
        "failed",
        "RuntimeError: cannot schedule new futures after shutdown",
    )
    assert "tool call shell__run_command: the MCP client pool failed" in caplog.text
