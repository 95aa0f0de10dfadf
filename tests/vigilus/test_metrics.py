"""GET /metrics: Prometheus text behind a bearer token, with figures read from the database at each scrape."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from audit.models import AuditEntry
from audit.services import record, take_checkpoint
from jit.choices import RequestStatus
from jit.models import AccessRequest
from operators.choices import PlanStatus, RunStatus
from operators.models import Operator, Plan, Run, Step
from providers.models import Provider
from tests.conftest import ROOT, VENV_BIN, process_env
from tools.choices import ServerStatus
from tools.models import MCPServer

TOKEN = "metrics-token-4f1c9a7e2b"
DASHBOARD = ROOT / "docker" / "grafana-dashboard.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def metrics_token(settings: object) -> str:
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape() -> tuple[str, Samples]:
    """(the body, each sample's value by (name, labels)), parsed by prometheus_client's own parser."""
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    body = response.content.decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    return body, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def make_request(status: str, waited: timedelta | None, *, tool: str = "shell__run_command") -> AccessRequest:
    request = AccessRequest.objects.create(
        tool=tool,
        intent="exec",
        arguments_digest="0" * 64,
        status=status,
        expires_at=timezone.now() + timedelta(minutes=15),
    )
    if waited is not None:
        created = timezone.now() - waited
        AccessRequest.objects.filter(pk=request.pk).update(created_at=created, decided_at=timezone.now())
    return request


@pytest.fixture
def populated(db: None) -> None:
    """Runs in several statuses with model steps, decided and pending access requests, tool calls that ended,
    MCP servers and a witnessed checkpoint."""
    provider = Provider.objects.create(name="lab", kind="ollama", base_url="http://127.0.0.1:11434")
    operator = Operator.objects.create(name="patcher", provider=provider)
    for status, n in ((RunStatus.COMPLETED, 3), (RunStatus.FAILED, 2), (RunStatus.AWAITING_APPROVAL, 1)):
        for _ in range(n):
            Run.objects.create(task="apt upgrade", status=status, operator=operator)
    run = Run.objects.filter(status=RunStatus.COMPLETED).first()
    for number, (latency_ms, cost) in enumerate(((80, "0.001"), (700, "0.002"), (4000, None)), start=1):
        cost = Decimal(cost) if cost else None
        Step.objects.create(
            run=run, number=number, prompt_tokens=100, completion_tokens=20, latency_ms=latency_ms, cost=cost
        )
    make_request(RequestStatus.PENDING, None)
    make_request(RequestStatus.PENDING, None)
    make_request(RequestStatus.APPROVED, timedelta(seconds=20))
    make_request(RequestStatus.APPROVED, timedelta(minutes=45))
    make_request(RequestStatus.DENIED, timedelta(seconds=5))
    make_request(RequestStatus.AUTO_APPROVED, timedelta(0))
    for status, expires_in in (
        (PlanStatus.AWAITING_APPROVAL, timedelta(minutes=5)),  # pending
        (PlanStatus.AWAITING_APPROVAL, -timedelta(seconds=1)),  # expired, not decided yet by the sweep
        (PlanStatus.APPLIED, timedelta(minutes=5)),
    ):
        parked = Run.objects.create(task="upgrade", status=RunStatus.AWAITING_PLAN_APPROVAL, operator=operator)
        Plan.objects.create(run=parked, status=status, expires_at=timezone.now() + expires_in)
    calls = [
        ("shell__run_command", "exec", "approved", "succeeded"),
        ("shell__run_command", "exec", "approved", "succeeded"),
        ("shell__run_command", "exec", "denied", "not_run"),
        ("ssh__run", "read", "allowed", "failed"),
        ("filesystem__read_file", "read", "allowed", "succeeded"),
    ]
    for tool, intent, decision, outcome in calls:
        record(
            "tool_call.outcome",
            actor="patcher",
            actor_kind="operator",
            tool=tool,
            intent=intent,
            decision=decision,
            outcome=outcome,
        )
    MCPServer.objects.create(
        name="uptime-kuma", transport="stdio", command="uptime-kuma-mcp", status=ServerStatus.UNREACHABLE
    )
    take_checkpoint()


def test_metrics_answer_404_while_no_token_is_configured(db: None, settings: object) -> None:
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token_with_a_bearer_challenge(db: None, metrics_token: str) -> None:
    missing = Client().get("/metrics")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"] == 'Bearer realm="vigilus metrics"'
    assert "vigilus_" not in missing.content.decode()
    for header in (f"Bearer {metrics_token}x", f"Basic {metrics_token}", metrics_token, "Bearer "):
        wrong = Client().get("/metrics", headers={"Authorization": header})
        assert wrong.status_code == 401, header
        assert "vigilus_" not in wrong.content.decode()
    assert (
        'error="invalid_token"'
        in (Client().get("/metrics", headers={"Authorization": "Bearer nope"})["WWW-Authenticate"])
    )


def test_the_token_may_come_from_a_file(tmp_path: Path) -> None:
    """VIGILUS_METRICS_TOKEN_FILE (a Docker secret): the settings read the file, trailing newline and all."""
    secret = tmp_path / "metrics_token"
    secret.write_text(TOKEN + "\n")
    env = process_env(VIGILUS_METRICS_TOKEN_FILE=str(secret))
    env.pop("VIGILUS_METRICS_TOKEN", None)
    out = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.METRICS_TOKEN == " + repr(TOKEN) + ")",
        ],
        env={**env, "DJANGO_SETTINGS_MODULE": "vigilus.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "True"


def test_the_numbers_follow_the_data(populated: None, metrics_token: str) -> None:
    _body, samples = scrape()
    assert value(samples, "vigilus_runs", status="completed") == 3
    assert value(samples, "vigilus_runs", status="failed") == 2
    assert value(samples, "vigilus_runs", status="awaiting_approval") == 1
    assert value(samples, "vigilus_runs", status="cancelled") == 0  # every status is reported, none missing
    assert value(samples, "vigilus_pending_approvals") == 2
    assert value(samples, "vigilus_pending_plans") == 1
    assert value(samples, "vigilus_runs", status="awaiting_plan_approval") == 3

    assert (
        value(
            samples, "vigilus_tool_calls_total", server="shell", intent="exec", decision="approved", outcome="succeeded"
        )
        == 2
    )
    assert (
        value(samples, "vigilus_tool_calls_total", server="shell", intent="exec", decision="denied", outcome="not_run")
        == 1
    )
    assert (
        value(samples, "vigilus_tool_calls_total", server="ssh", intent="read", decision="allowed", outcome="failed")
        == 1
    )

    assert value(samples, "vigilus_model_requests_total", provider="lab") == 3
    assert value(samples, "vigilus_model_tokens_total", provider="lab", kind="prompt") == 300
    assert value(samples, "vigilus_model_tokens_total", provider="lab", kind="completion") == 60
    assert value(samples, "vigilus_model_cost_usd_total", provider="lab") == pytest.approx(0.003)
    assert value(samples, "vigilus_step_latency_seconds_bucket", provider="lab", le="0.1") == 1
    assert value(samples, "vigilus_step_latency_seconds_bucket", provider="lab", le="1.0") == 2
    assert value(samples, "vigilus_step_latency_seconds_bucket", provider="lab", le="5.0") == 3
    assert value(samples, "vigilus_step_latency_seconds_bucket", provider="lab", le="+Inf") == 3
    assert value(samples, "vigilus_step_latency_seconds_count", provider="lab") == 3
    assert value(samples, "vigilus_step_latency_seconds_sum", provider="lab") == pytest.approx(4.78)

    # Approved after 20 s and after 45 min, denied after 5 s; the auto-approved one waited for nobody.
    assert value(samples, "vigilus_time_to_approval_seconds_bucket", decision="approved", le="10.0") == 0
    assert value(samples, "vigilus_time_to_approval_seconds_bucket", decision="approved", le="30.0") == 1
    assert value(samples, "vigilus_time_to_approval_seconds_bucket", decision="approved", le="3600.0") == 2
    assert value(samples, "vigilus_time_to_approval_seconds_count", decision="approved") == 2
    assert value(samples, "vigilus_time_to_approval_seconds_sum", decision="approved") == pytest.approx(2720, abs=5)
    assert value(samples, "vigilus_time_to_approval_seconds_bucket", decision="denied", le="10.0") == 1

    head = AuditEntry.objects.order_by("-sequence").values_list("sequence", flat=True).first()
    assert value(samples, "vigilus_audit_entries_total") == head == AuditEntry.objects.count()
    assert value(samples, "vigilus_audit_unwitnessed_entries") == 0
    signed = value(samples, "vigilus_audit_last_witnessed_checkpoint_timestamp_seconds")
    assert abs(signed - timezone.now().timestamp()) < 600
    assert value(samples, "vigilus_mcp_servers", status="unreachable") >= 1
    assert ("vigilus_workers_alive", frozenset()) in samples


def test_new_rows_show_at_the_next_scrape(populated: None, metrics_token: str) -> None:
    _body, before = scrape()
    Run.objects.create(task="check disks", status=RunStatus.QUEUED)
    record("tool_call.outcome", tool="shell__run_command", intent="exec", decision="approved", outcome="succeeded")
    _body, after = scrape()
    assert value(after, "vigilus_runs", status="queued") == value(before, "vigilus_runs", status="queued") + 1
    labels = {"server": "shell", "intent": "exec", "decision": "approved", "outcome": "succeeded"}
    assert value(after, "vigilus_tool_calls_total", **labels) == value(before, "vigilus_tool_calls_total", **labels) + 1
    assert value(after, "vigilus_audit_entries_total") == value(before, "vigilus_audit_entries_total") + 1
    assert value(after, "vigilus_audit_unwitnessed_entries") == 1


WRITER = """
from operators.models import Run
from audit.services import record
Run.objects.create(task="from a worker", status="cancelled")
record("tool_call.outcome", tool="docker__restart", intent="exec", decision="auto_approved", outcome="succeeded")
"""


def test_work_done_by_another_process_is_counted(transactional_db: None, metrics_token: str) -> None:
    """The web process answering the scrape reports what a worker wrote: the figures come from the database."""
    subprocess.run(
        [str(VENV_BIN / "vigilus"), "shell", "-c", WRITER], env=process_env(), cwd=ROOT, check=True, capture_output=True
    )
    _body, samples = scrape()
    assert value(samples, "vigilus_runs", status="cancelled") == 1
    assert (
        value(
            samples,
            "vigilus_tool_calls_total",
            server="docker",
            intent="exec",
            decision="auto_approved",
            outcome="succeeded",
        )
        == 1
    )


@pytest.mark.integration
@pytest.mark.django_db
def test_live_workers_are_counted(celery_worker: str, metrics_token: str) -> None:
    _body, samples = scrape()
    assert value(samples, "vigilus_workers_alive") >= 1


def test_every_family_is_named_vigilus(populated: None, metrics_token: str) -> None:
    body, _samples = scrape()
    families = list(text_string_to_metric_families(body))
    assert len(families) >= 12
    assert [f.name for f in families if not f.name.startswith("vigilus_")] == []
    assert all(f.documentation for f in families), "every family says what it counts"


def test_the_token_never_reaches_the_logs_or_the_audit_log(
    populated: None, metrics_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    entries = AuditEntry.objects.count()
    with caplog.at_level(logging.DEBUG):
        scrape()
        Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}-wrong"})
        Client().get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
    assert TOKEN not in caplog.text
    assert AuditEntry.objects.count() == entries  # a scrape writes nothing


def test_the_grafana_dashboard_queries_only_metrics_that_exist(populated: None, metrics_token: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    targets = [target for panel in dashboard["panels"] for target in panel["targets"]]
    assert targets and all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in targets)
    used = {name for t in targets for name in re.findall(r"\bvigilus_[a-z0-9_]+", t["expr"])}
    _body, samples = scrape()
    exposed = {name for name, _labels in samples}
    assert used - exposed == set()
    # The panels the issue asks for.
    for name in (
        "vigilus_runs",
        "vigilus_pending_approvals",
        "vigilus_pending_plans",
        "vigilus_tool_calls_total",
        "vigilus_step_latency_seconds_bucket",
        "vigilus_time_to_approval_seconds_bucket",
        "vigilus_audit_entries_total",
        "vigilus_audit_last_witnessed_checkpoint_timestamp_seconds",
        "vigilus_mcp_servers",
    ):
        assert name in used, name
