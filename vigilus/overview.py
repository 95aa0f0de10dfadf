"""The Overview page's content: a first-run checklist until the setup is done, then what needs a person now
(pending approvals, active and failed runs), the health of what Vigilus depends on, and small charts of the last
days (runs per day by status, tool calls by intent and decision, time to approve) — computed here with a few
aggregate queries, drawn by the template as plain HTML bars (no script, no charting library)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

CHART_DAYS = 14
CALL_DAYS = 7
APPROVAL_DAYS = 30
RECENT_RUNS = 8


@dataclass(frozen=True)
class SetupStep:
    label: str
    url: str
    done: bool


@dataclass(frozen=True)
class DayBar:
    """One day's runs, as stacked bar heights in percent of the busiest day."""

    day: date
    completed: int
    failed: int
    other: int
    scale: int

    @property
    def total(self) -> int:
        return self.completed + self.failed + self.other

    def height(self, count: int) -> float:
        return round(100 * count / self.scale, 1) if self.scale else 0.0

    @property
    def completed_height(self) -> float:
        return self.height(self.completed)

    @property
    def failed_height(self) -> float:
        return self.height(self.failed)

    @property
    def other_height(self) -> float:
        return self.height(self.other)


@dataclass(frozen=True)
class CallBar:
    intent: str
    decision: str
    count: int
    width: float  # percent of the largest group


@dataclass
class Overview:
    setup: list[SetupStep]
    pending_requests: list = field(default_factory=list)
    active_runs: list = field(default_factory=list)
    recent_runs: list = field(default_factory=list)
    days: list[DayBar] = field(default_factory=list)
    calls: list[CallBar] = field(default_factory=list)
    approval_median_s: float | None = None
    approval_p90_s: float | None = None
    approvals_decided: int = 0
    mcp_servers: dict[str, int] = field(default_factory=dict)
    providers: dict[str, int] = field(default_factory=dict)

    @property
    def setup_done(self) -> bool:
        return all(step.done for step in self.setup)


def setup_checklist() -> list[SetupStep]:
    """The first-run steps, in order, each linking to the page that does it."""
    from operators.models import Operator, Run
    from providers.choices import CheckStatus
    from providers.models import Provider
    from tools.models import Server

    return [
        SetupStep("Add a model provider", reverse("providers"), Provider.objects.exists()),
        SetupStep(
            "Test that its model can call tools",
            reverse("providers"),
            Provider.objects.filter(tools_check_status=CheckStatus.OK).exists(),
        ),
        SetupStep("Create an Operator", reverse("operators"), Operator.objects.exists()),
        SetupStep("Add a server to manage", reverse("servers"), Server.objects.exists()),
        SetupStep("Run a first task", reverse("tasks"), Run.objects.exists()),
    ]


def build(user: AbstractBaseUser) -> Overview:
    from jit.models import AccessRequest
    from jit.services import can_approve
    from operators.choices import RunStatus
    from operators.models import Run
    from providers.choices import CheckStatus
    from providers.models import Provider
    from tools.choices import ServerStatus
    from tools.models import MCPServer

    overview = Overview(setup=setup_checklist())
    if can_approve(user):
        overview.pending_requests = list(AccessRequest.objects.pending()[:5])
    overview.active_runs = list(Run.objects.exclude(status__in=RunStatus.finished()).order_by("-created_at")[:10])
    overview.recent_runs = list(
        Run.objects.filter(status__in=RunStatus.finished()).order_by("-created_at")[:RECENT_RUNS]
    )
    overview.days = runs_per_day()
    overview.calls = calls_by_intent_and_decision()
    overview.approval_median_s, overview.approval_p90_s, overview.approvals_decided = time_to_approve()
    servers = MCPServer.objects.filter(enabled=True).values_list("status").annotate(n=Count("id")).order_by()
    overview.mcp_servers = {ServerStatus(status).label: n for status, n in servers}
    providers = Provider.objects.filter(enabled=True).values_list("last_test_status").annotate(n=Count("id"))
    overview.providers = {CheckStatus(status).label: n for status, n in providers.order_by()}
    return overview


def runs_per_day(days: int = CHART_DAYS) -> list[DayBar]:
    """Runs started on each of the last `days` days (today included), split into completed, failed and the rest."""
    from operators.choices import RunStatus
    from operators.models import Run

    today = timezone.localdate()
    first = today - timedelta(days=days - 1)
    rows = (
        Run.objects.filter(created_at__date__gte=first)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(
            completed=Count("id", filter=Q(status=RunStatus.COMPLETED)),
            failed=Count("id", filter=Q(status=RunStatus.FAILED)),
            total=Count("id"),
        )
        .order_by()
    )
    by_day = {row["day"]: row for row in rows}
    scale = max((row["total"] for row in rows), default=0)
    bars = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {"completed": 0, "failed": 0, "total": 0})
        other = row["total"] - row["completed"] - row["failed"]
        bars.append(DayBar(day, row["completed"], row["failed"], other, scale))
    return bars


def calls_by_intent_and_decision(days: int = CALL_DAYS) -> list[CallBar]:
    """Tool calls of the last `days` days grouped by intent and the gate's decision, largest first."""
    from operators.models import ToolCall

    rows = list(
        ToolCall.objects.filter(created_at__gte=timezone.now() - timedelta(days=days))
        .exclude(decision="")
        .values_list("intent", "decision")
        .annotate(n=Count("id"))
        .order_by("-n", "intent", "decision")
    )
    largest = max((n for _, _, n in rows), default=0)
    return [CallBar(intent or "-", decision, n, round(100 * n / largest, 1)) for intent, decision, n in rows]


def time_to_approve(days: int = APPROVAL_DAYS) -> tuple[float | None, float | None, int]:
    """Median and 90th percentile seconds from a request being raised to a person approving it, over the last
    `days` days, and how many approvals that is."""
    from jit.choices import RequestStatus
    from jit.models import AccessRequest

    decided = AccessRequest.objects.filter(
        status=RequestStatus.APPROVED, decided_at__gte=timezone.now() - timedelta(days=days)
    ).values_list("created_at", "decided_at")[:2000]
    waits = sorted((decided_at - created_at).total_seconds() for created_at, decided_at in decided)
    if not waits:
        return None, None, 0
    p90 = waits[min(len(waits) - 1, int(0.9 * len(waits)))]
    return statistics.median(waits), p90, len(waits)
