"""`manage.py audit verify|checkpoint|export`."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditCheckpoint, AuditEntry
from audit.services import record

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out)
    return out.getvalue()


def test_verify_reports_an_intact_chain() -> None:
    record("a")
    record("b")
    assert run("verify").startswith("OK: 2 entries, chain intact through #2")
    data = json.loads(run("verify", "--json"))
    assert data["ok"] and data["entries"] == 2 and data["problem"] is None


def test_checkpoint_signs_the_head() -> None:
    with pytest.raises(CommandError, match="empty"):
        run("checkpoint")
    entry = record("a")
    assert run("checkpoint").startswith(f"Checkpoint at #1 ({entry.hash})")
    data = json.loads(run("checkpoint", "--json"))
    assert data["sequence"] == 1 and AuditCheckpoint.objects.count() == 1


def test_export_jsonl_and_csv_with_every_column() -> None:
    record("tool_call.decision", actor="op", decision="allowed", arguments={"path": "/etc"}, note="n")
    record("tool_call.outcome", actor="op", outcome="succeeded", duration_ms=5)
    lines = run("export", "--format", "jsonl").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["sequence"] for r in rows] == [1, 2]
    assert rows[0]["arguments"] == {"path": "/etc"} and rows[0]["details"] == {"note": "n"}
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[0]["time"].endswith("+00:00")
    table = list(csv.DictReader(io.StringIO(run("export", "--format", "csv"))))
    assert [r["event"] for r in table] == ["tool_call.decision", "tool_call.outcome"]
    assert json.loads(table[0]["arguments"]) == {"path": "/etc"} and table[1]["duration_ms"] == "5"


def test_export_since_and_to_a_file(tmp_path: Path) -> None:
    record("old")
    cut = timezone.now()
    record("new")
    rows = [json.loads(line) for line in run("export", "--since", cut.isoformat()).splitlines()]
    assert [r["event"] for r in rows] == ["new"]
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert run("export", "--since", tomorrow) == ""
    target = tmp_path / "audit.csv"
    err = io.StringIO()
    call_command("audit", "export", "--format", "csv", "--output", str(target), stdout=io.StringIO(), stderr=err)
    assert target.read_text().splitlines()[0].startswith("sequence,time,event")
    assert len(target.read_text().splitlines()) == 3 and "Exported to" in err.getvalue()
    with pytest.raises(CommandError, match="not an ISO 8601"):
        run("export", "--since", "yesterday")


def test_an_empty_csv_export_still_has_its_header() -> None:
    assert run("export", "--format", "csv").startswith("sequence,time,event")
    assert AuditEntry.objects.count() == 0


def test_the_beat_task_takes_a_checkpoint() -> None:
    from audit.tasks import take_checkpoint

    assert take_checkpoint() is None
    record("a")
    assert take_checkpoint.apply().get() == 1 and AuditCheckpoint.objects.get().sequence == 1
