"""/metrics: the state of Vigilus in the Prometheus text format, read from the database at each scrape.

Every figure is read from the database when Prometheus scrapes (and the number of workers from a broadcast ping),
so the process that answers reports the work of every worker and web process alike: nothing is counted in memory,
and the worker never imports prometheus_client. A scrape costs a handful of aggregate queries; histograms are
bucketed in SQL (one filtered COUNT per bucket), never by looping over rows in Python.

Counters come from append-only or never-deleted rows (audit entries, model steps), so they only go up; the audit
log's total is its chain head's sequence, which runs from 1 without gaps (no COUNT over the log).
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from django.db.models import Count, F, FloatField, Func, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

# The audit event every tool call ends with (tools/gateway.py, operators/agent.py), allowed or not: it names the
# call's tool, intent, decision and outcome.
TOOL_CALL_OUTCOME_EVENT = "tool_call.outcome"
# The provider label of a model step whose Operator was deleted since (the step keeps no provider of its own).
# Parentheses: no provider can be named this (provider names are slugs).
UNKNOWN_PROVIDER = "(unknown)"

# Bucket upper bounds, in seconds. A model answers in a fraction of a second (a local model) to minutes (a
# reasoning model on a long context); a person approves in seconds (at the dashboard) to hours (asleep).
STEP_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TIME_TO_APPROVAL_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


def presented_token(authorization: str) -> str:
    """The credential of an `Authorization: Bearer <token>` header ('' when the header holds none)."""
    scheme, _, credential = authorization.strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else ""


def token_matches(presented: str, expected: str) -> bool:
    """Whether the presented token is the configured one, compared in constant time."""
    return bool(presented) and bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


def workers_alive() -> int:
    """The Celery workers answering a ping, as /healthz counts them (0 when Redis is down, without waiting on it)."""
    from vigilus import health

    return health.live_workers() if health.redis_ok() else 0


def exposition(workers: Callable[[], int] = workers_alive) -> tuple[bytes, str]:
    """(the metrics in the Prometheus text format, its content type). Only Vigilus's own families: the web
    server's process figures would describe one web process of several, not Vigilus."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(VigilusCollector(workers))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class VigilusCollector:
    """A prometheus_client collector whose every family is read from the database when it is collected."""

    def __init__(self, workers: Callable[[], int] = workers_alive) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        # The worker ping waits its whole timeout (a second) for late answers: it runs beside the queries.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics-ping") as pool:
            workers = pool.submit(self.workers)
            yield from runs()
            yield from pending_approvals()
            yield from pending_plans()
            yield from tool_calls()
            yield from model_steps()
            yield from time_to_approval()
            yield from audit_log()
            yield from mcp_servers()
            yield GaugeMetricFamily(
                "vigilus_workers_alive",
                "Celery workers that answered a ping (as /healthz counts them).",
                workers.result(),
            )


# --- the families, each from one or two aggregate queries ----------------------------------------------------


def runs() -> Iterator[Metric]:

    from operators.choices import RunStatus
    from operators.models import Run

    yield _by_status("vigilus_runs", "Runs by status.", RunStatus.values, Run.objects.all())


def pending_approvals() -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    from jit.models import AccessRequest

    yield GaugeMetricFamily(
        "vigilus_pending_approvals",
        "Access requests waiting for a person to approve or deny them (not yet expired).",
        AccessRequest.objects.pending().count(),
    )


def pending_plans() -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    from operators.models import Plan

    yield GaugeMetricFamily(
        "vigilus_pending_plans",
        "Plans waiting for a person to approve or reject them as a whole (not yet expired).",
        Plan.objects.awaiting().count(),
    )


def tool_calls() -> Iterator[Metric]:
    """Every tool call that ended (ran, failed, or was refused, denied or let expire), from its audit outcome entry:
    calls from runs and from anywhere else, and never fewer than before (the log is append-only)."""
    from prometheus_client.core import CounterMetricFamily

    from audit.models import AuditEntry
    from tools.models import QUALIFIER

    rows = (
        AuditEntry.objects.filter(event=TOOL_CALL_OUTCOME_EVENT)
        .order_by()
        .values_list("tool", "intent", "decision", "outcome")
        .annotate(n=Count("pk"))
    )
    # Grouped by tool in SQL; tools of one server are added up here, over a few hundred groups at most.
    by_server: Counter[tuple[str, str, str, str]] = Counter()
    for tool, intent, decision, outcome, n in rows:
        by_server[(tool.split(QUALIFIER, 1)[0], intent, decision, outcome)] += n
    family = CounterMetricFamily(
        "vigilus_tool_calls",
        "Tool calls that ended, by MCP server, intent, gateway decision and outcome.",
        labels=["server", "intent", "decision", "outcome"],
    )
    for labels, n in sorted(by_server.items()):
        family.add_metric(list(labels), n)
    yield family


def model_steps() -> Iterator[Metric]:
    """Model requests, tokens, cost and latency of the agent loop's steps, by provider: one query.

    A step is one model answer stored with its run. Not stored, so not counted: the orchestrator's routing
    request, and requests that failed (the run fails with the provider's error instead)."""
    from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

    from operators.models import Step

    buckets = {
        f"le_{i}": Count("pk", filter=Q(latency_ms__lte=edge * 1000)) for i, edge in enumerate(STEP_LATENCY_BUCKETS)
    }
    rows = (
        Step.objects.order_by()
        .values(provider=Coalesce(F("run__operator__provider__name"), Value(UNKNOWN_PROVIDER)))
        .annotate(
            requests=Count("pk"),
            prompt_tokens_sum=Sum("prompt_tokens"),
            completion_tokens_sum=Sum("completion_tokens"),
            cost_sum=Sum("cost"),
            latency_ms_sum=Sum("latency_ms"),
            **buckets,
        )
        .order_by("provider")
    )
    requests = CounterMetricFamily(
        "vigilus_model_requests", "Model requests answered in runs' steps, by provider.", labels=["provider"]
    )
    tokens = CounterMetricFamily(
        "vigilus_model_tokens", "Tokens of runs' model requests, by provider and kind.", labels=["provider", "kind"]
    )
    cost = CounterMetricFamily(
        "vigilus_model_cost_usd",
        "Cost of runs' model requests in US dollars, by provider, where the model's price is known.",
        labels=["provider"],
    )
    latency = HistogramMetricFamily(
        "vigilus_step_latency_seconds",
        "Time the model took to answer each step of a run, by provider.",
        labels=["provider"],
    )
    for row in rows:
        provider = row["provider"]
        requests.add_metric([provider], row["requests"])
        tokens.add_metric([provider, "prompt"], row["prompt_tokens_sum"] or 0)
        tokens.add_metric([provider, "completion"], row["completion_tokens_sum"] or 0)
        cost.add_metric([provider], float(row["cost_sum"] or 0))
        latency.add_metric(
            [provider],
            _buckets(STEP_LATENCY_BUCKETS, row, row["requests"]),
            (row["latency_ms_sum"] or 0) / 1000,
        )
    yield from (requests, tokens, cost, latency)


def time_to_approval() -> Iterator[Metric]:
    """How long access requests waited for the person who approved or denied them (auto-approved ones waited
    for nobody and are left out), by decision: one query."""
    from prometheus_client.core import HistogramMetricFamily

    from jit.choices import RequestStatus
    from jit.models import AccessRequest

    decisions = (RequestStatus.APPROVED, RequestStatus.DENIED)
    buckets = {f"le_{i}": Count("pk", filter=Q(waited__lte=edge)) for i, edge in enumerate(TIME_TO_APPROVAL_BUCKETS)}
    rows = {
        row["status"]: row
        for row in AccessRequest.objects.filter(status__in=decisions, decided_at__isnull=False)
        .order_by()
        .alias(waited=SecondsBetween("created_at", "decided_at"))
        .values("status")
        .annotate(count=Count("pk"), waited_sum=Sum("waited"), **buckets)
    }
    family = HistogramMetricFamily(
        "vigilus_time_to_approval_seconds",
        "Time from an access request to a person's decision on it, by decision.",
        labels=["decision"],
    )
    for decision in decisions:
        row = rows.get(decision, {})
        family.add_metric(
            [decision], _buckets(TIME_TO_APPROVAL_BUCKETS, row, row.get("count", 0)), row.get("waited_sum") or 0.0
        )
    yield family


class SecondsBetween(Func):
    """Seconds from one datetime column to another, in the database's own arithmetic. (Django's datetime
    subtraction calls a Python function for every row on SQLite: 100 times slower here.)"""

    arity = 2
    output_field = FloatField()

    def _operands(self, compiler: Any, connection: Any) -> tuple[str, str, list[Any]]:
        (start, start_params), (end, end_params) = (compiler.compile(e) for e in self.get_source_expressions())
        return start, end, [*end_params, *start_params]

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        start, end, params = self._operands(compiler, connection)
        return f"EXTRACT(EPOCH FROM ({end} - {start}))", params

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        start, end, params = self._operands(compiler, connection)
        return f"((julianday({end}) - julianday({start})) * 86400.0)", params


def audit_log() -> Iterator[Metric]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    from audit.models import AuditCheckpoint, ChainHead

    head = ChainHead.objects.filter(pk=1).values_list("sequence", flat=True).first() or 0
    yield CounterMetricFamily("vigilus_audit_entries", "Entries in the audit log.", head)
    witnessed = (
        AuditCheckpoint.objects.filter(witnessed=True)
        .order_by("-sequence", "-id")
        .values_list("sequence", "created_at")
        .first()
    )
    yield GaugeMetricFamily(
        "vigilus_audit_unwitnessed_entries",
        "Audit entries after the last checkpoint also written to the witness file (all of them when none is).",
        head - (witnessed[0] if witnessed else 0),
    )
    last = GaugeMetricFamily(
        "vigilus_audit_last_witnessed_checkpoint_timestamp_seconds",
        "When the last audit checkpoint also written to the witness file was signed (Unix time; absent: never).",
    )
    if witnessed:
        last.add_metric([], witnessed[1].timestamp())
    yield last


def mcp_servers() -> Iterator[Metric]:

    from tools.choices import ServerStatus
    from tools.models import MCPServer

    yield _by_status("vigilus_mcp_servers", "MCP servers by status.", ServerStatus.values, MCPServer.objects.all())


def _by_status(name: str, documentation: str, statuses: Sequence[str], rows: QuerySet) -> Metric:
    """A gauge of `rows` counted by their `status`, every status listed (0 where none is in it)."""
    from prometheus_client.core import GaugeMetricFamily

    counts = dict.fromkeys(statuses, 0)
    counts.update(rows.order_by().values_list("status").annotate(n=Count("pk")))
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status, n in counts.items():
        family.add_metric([status], n)
    return family


def _buckets(edges: Sequence[float], row: dict[str, Any], count: int) -> list[tuple[str, float]]:
    """A histogram's cumulative buckets from a row holding `le_<i>` counts for each edge, and +Inf = count."""
    from prometheus_client.utils import floatToGoString

    return [
        *((floatToGoString(edge), row.get(f"le_{i}", 0)) for i, edge in enumerate(edges)),
        ("+Inf", count),
    ]
