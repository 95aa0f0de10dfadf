"""Tool calls through the gateway land in the chained log: a decision before dispatch, an outcome after,
and no entry before dispatch means no dispatch."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import DatabaseError

from audit import services
from audit.models import AuditEntry
from tools import gateway
from tools.mcp_client import MCPClientPool
from tools.services import discover_all

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _discovered(tmp_path: Path, settings: object) -> None:
    settings.FILESYSTEM_ROOTS = [tmp_path]
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()


def test_a_tool_call_writes_its_decision_then_its_outcome() -> None:
    result = gateway.execute("shell__run_command", {"command": "uname -s"}, reason="which kernel?")
    assert result.ok
    decision, outcome = AuditEntry.objects.filter(event__startswith="tool_call.").order_by("sequence")
    assert (decision.decision, decision.intent, decision.tool) == ("allowed", "read", "shell__run_command")
    assert decision.reason == "which kernel?" and decision.arguments == {"command": "uname -s"}
    assert decision.target and "intent_reason" in decision.details
    assert (outcome.outcome, outcome.sequence) == ("succeeded", decision.sequence + 1)
    assert "Linux" in outcome.result_summary and outcome.duration_ms is not None
    assert services.verify_log().ok


def test_when_the_decision_cannot_be_written_the_call_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    dispatched = []
    monkeypatch.setattr(MCPClientPool, "call_tool", lambda *a, **k: dispatched.append(a))

    def broken(using: str, columns: dict, durable: bool) -> object:
        raise DatabaseError("database is locked")

    monkeypatch.setattr(services, "_append", broken)
    result = gateway.execute("shell__run_command", {"command": "uptime"})
    assert not result.ok and result.decision == "error" and dispatched == []
    assert result.content.startswith("the call was not run: its audit entry could not be written (")
    assert "database is locked" in result.content


def tool_entries() -> list[tuple[str, str, str]]:
    rows = AuditEntry.objects.filter(event__startswith="tool_call.").order_by("sequence")
    return list(rows.values_list("event", "decision", "outcome"))


@pytest.mark.parametrize(
    ("tool", "arguments", "decision"),
    [
        ("shell__no_such_tool", {"command": "uptime"}, "unavailable"),
        ("shell__run_command", {"command": 42}, "invalid"),
        ("shell__run_command", {"command": "touch /tmp/x"}, "denied"),  # write, and no Operator to hold a grant
    ],
)
def test_a_call_that_does_not_run_gets_a_not_run_outcome(tool: str, arguments: dict, decision: str) -> None:
    result = gateway.execute(tool, arguments)
    assert not result.ok and result.decision == decision
    assert tool_entries() == [("tool_call.decision", decision, ""), ("tool_call.outcome", decision, "not_run")]
    assert services.verify_log().ok
