"""/metrics scrape time on a busy instance: 100,000 audit entries and 10,000 runs.

For each database (SQLite in a throwaway data directory; PostgreSQL in a throwaway database on
VIGILUS_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres), in a child process:

- filled in bulk: RUNS runs spread over every status, STEPS_PER_RUN model steps each (latencies of 50 ms to 40 s,
  on PROVIDERS providers), AUDIT_ENTRIES audit entries as a valid hash chain (each tool call leaves a decision and
  an outcome entry; eight tools on five servers, all intents, a mix of decisions and outcomes) with a witnessed
  checkpoint every 1000, APPROVALS decided access requests and a few pending, eight MCP servers;
- the database side of a scrape: `vigilus.metrics.exposition()` with the worker ping left out, SCRAPES times
  (median, p95), and each family's share (median of SCRAPES);
- the whole scrape as Prometheus makes it: GET /metrics with the bearer token through Django's test client, the
  worker ping included (it waits its full second for late answers, beside the queries), FULL_SCRAPES times.

    .venv/bin/python bench/metrics_scrape.py [sqlite|postgresql ...]

REDIS_URL (default redis://127.0.0.1:6379/9) is only pinged: no worker listens there, so the ping finds none.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib import build_audit_chain, percentile, throwaway_vigilus
from benchlib import run_child as benchlib_run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 10_000
STEPS_PER_RUN = 3
AUDIT_ENTRIES = 100_000
APPROVALS = 2_000
PROVIDERS = ("ollama-lab", "anthropic", "openrouter")
SCRAPES = 30
FULL_SCRAPES = 5
TOKEN = "bench-metrics-token"  # noqa: S105 - the throwaway instance's own
TOOLS = (
    ("shell__run_command", "exec"),
    ("shell__run_command", "read"),
    ("filesystem__read_file", "read"),
    ("filesystem__write_file", "write"),
    ("docker__list_containers", "read"),
    ("docker__restart_container", "exec"),
    ("ssh__run", "elevate"),
    ("nmap__scan", "read"),
)


def fill() -> dict[str, int]:
    """The throwaway instance's rows, written in bulk."""
    from datetime import timedelta

    from django.conf import settings
    from django.db import transaction
    from django.utils import timezone

    from jit.models import AccessRequest
    from operators.choices import RunStatus
    from operators.models import Operator, Run, Step
    from providers.models import Provider
    from tools.choices import ServerStatus
    from tools.models import MCPServer

    now = timezone.now()
    operators = [
        Operator.objects.create(name=f"op-{name}", provider=Provider.objects.create(name=name, kind="ollama"))
        for name in PROVIDERS
    ]
    statuses = RunStatus.values
    with transaction.atomic():
        Run.objects.bulk_create(
            (
                Run(task=f"task {i}", status=statuses[i % len(statuses)], operator=operators[i % len(operators)])
                for i in range(RUNS)
            ),
            batch_size=2000,
        )
    run_ids = list(Run.objects.values_list("pk", flat=True))
    latencies = (50, 120, 400, 900, 2_000, 4_500, 12_000, 40_000)
    with transaction.atomic():
        Step.objects.bulk_create(
            (
                Step(
                    run_id=run_id,
                    number=n,
                    prompt_tokens=1500 + n,
                    completion_tokens=200,
                    cost=None if i % 3 == 0 else "0.0021",
                    latency_ms=latencies[(i + n) % len(latencies)],
                )
                for i, run_id in enumerate(run_ids)
                for n in range(1, STEPS_PER_RUN + 1)
            ),
            batch_size=2000,
        )
    with transaction.atomic():
        requests = AccessRequest.objects.bulk_create(
            AccessRequest(
                tool="shell__run_command",
                intent="exec",
                arguments_digest="0" * 64,
                status="pending" if i < 5 else ("approved" if i % 4 else "denied"),
                expires_at=now + timedelta(minutes=15),
            )
            for i in range(APPROVALS + 5)
        )
        for i, request in enumerate(requests[5:]):
            AccessRequest.objects.filter(pk=request.pk).update(
                created_at=now - timedelta(seconds=3 + (i * 37) % 7200), decided_at=now
            )
    for i, status in enumerate(ServerStatus.values + ServerStatus.values[:3]):
        MCPServer.objects.create(name=f"server{i}", transport="stdio", command="true", status=status)
    checkpoints = audit_chain(AUDIT_ENTRIES, every=settings.AUDIT_CHECKPOINT_EVERY or 1000)
    return {"runs": RUNS, "steps": RUNS * STEPS_PER_RUN, "audit_entries": AUDIT_ENTRIES, "checkpoints": checkpoints}


def audit_chain(total: int, every: int) -> int:
    """`total` entries as a valid chain (benchlib.build_audit_chain), each tool call a decision entry then an
    outcome entry, with a witnessed checkpoint every `every`. Returns the number of checkpoints."""
    from datetime import timedelta

    from django.utils import timezone

    decisions = ("allowed",) * 6 + ("approved", "auto_approved", "denied", "expired")
    outcomes = ("succeeded",) * 8 + ("failed", "not_run")

    def entry_for(sequence: int) -> tuple[str, str, str, dict]:
        call = sequence // 2
        tool, intent = TOOLS[call % len(TOOLS)]
        details: dict[str, Any] = {"run": 1 + call % RUNS, "tool": tool, "intent": intent}
        details["decision"] = decisions[call % len(decisions)]
        if sequence % 2:
            event = "tool_call.decision"
        else:
            event, details["outcome"] = "tool_call.outcome", outcomes[call % len(outcomes)]
        details["arguments"] = {"command": f"df -h /srv/{call}"}
        return event, "patcher", "operator", details

    return build_audit_chain(total, every, entry_for, start=timezone.now() - timedelta(days=1))


def timed(function: Callable[[], Any], times: int) -> list[float]:
    """Milliseconds per call, after one warm-up call."""
    function()
    timings = []
    for _ in range(times):
        started = time.perf_counter()
        function()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def child(vendor: str, database_url: str | None) -> dict[str, Any]:
    """Run in a process of its own: Django reads its settings once, at start-up."""
    os.environ["VIGILUS_METRICS_TOKEN"] = TOKEN
    throwaway_vigilus(database_url)
    from django.db import connection
    from django.test import Client
    from prometheus_client.parser import text_string_to_metric_families

    from vigilus import metrics

    filled = fill()
    body, _content_type = metrics.exposition(workers=lambda: 0)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["vigilus_audit_entries"].samples[0].value == AUDIT_ENTRIES, "the chain head is not counted"
    assert sum(s.value for s in families["vigilus_runs"].samples) == RUNS

    client = Client()

    def full_scrape() -> None:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200, response.status_code

    database = timed(lambda: metrics.exposition(workers=lambda: 0), SCRAPES)
    parts = {
        name: statistics.median(timed(lambda family=family: list(family()), SCRAPES))
        for name, family in (
            ("runs", metrics.runs),
            ("pending approvals", metrics.pending_approvals),
            ("tool calls (audit log)", metrics.tool_calls),
            ("model steps", metrics.model_steps),
            ("time to approval", metrics.time_to_approval),
            ("audit log", metrics.audit_log),
            ("MCP servers", metrics.mcp_servers),
        )
    }
    full = timed(full_scrape, FULL_SCRAPES)
    version = (
        ".".join(map(str, connection.Database.sqlite_version_info))
        if vendor == "sqlite"
        else ".".join(map(str, divmod(connection.pg_version, 10000)))
    )
    return {
        "server": f"{connection.vendor} {version}",
        **filled,
        "bytes": len(body),
        "database_median": statistics.median(database),
        "database_p95": percentile(database, 95),
        "full_median": statistics.median(full),
        "full_p95": percentile(full, 95),
        "parts": parts,
    }


def run_child(vendor: str) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    return benchlib_run_child(__file__, vendor, [], env, "vigilus_bench_metrics")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], os.environ.get("DATABASE_URL"))))
        return
    results = [run_child(vendor) for vendor in argv or ["sqlite", "postgresql"]]
    first = results[0]
    print(
        f"/metrics scrape: {first['runs']:,} runs, {first['steps']:,} model steps, {first['audit_entries']:,} audit "
        f"entries ({first['checkpoints']} witnessed checkpoints), {APPROVALS:,} decided access requests"
    )
    print(f"{'':40}" + "".join(f"{r['server']:>20}" for r in results))
    rows = [
        (f"database side, median of {SCRAPES}  ms", "database_median"),
        (f"database side, p95 of {SCRAPES}     ms", "database_p95"),
        (f"GET /metrics, median of {FULL_SCRAPES}    ms", "full_median"),
        (f"GET /metrics, p95 of {FULL_SCRAPES}       ms", "full_p95"),
    ]
    for label, key in rows:
        print(f"{label:40}" + "".join(f"{r[key]:>20.1f}" for r in results))
    print(f"{'exposition size                  bytes':40}" + "".join(f"{r['bytes']:>20,}" for r in results))
    print("each family, median ms:")
    for name in first["parts"]:
        print(f"  {name:38}" + "".join(f"{r['parts'][name]:>20.2f}" for r in results))
    print("(GET /metrics includes the worker ping, which waits its full second for late answers.)")


if __name__ == "__main__":
    main(sys.argv[1:])
