"""What the agent loop costs per step beyond the model call, and whether 50 concurrent runs all finish.

For each database (SQLite in a throwaway data directory; PostgreSQL too when DATABASE_URL is given, in a
throwaway database created on that server and dropped afterwards), in a child process of its own:

- a FakeLLMServer that answers at once: a run whose task says `tool-steps=N` gets N read tool calls
  (`echo ...` through the shell tool, one per model step), then a text answer, whatever order requests
  arrive in (so concurrent runs do not steal each other's turns);
- (a) per-step overhead: runs of N tool steps, stepped by `operators.agent.advance` in a loop in this
  process (no Celery), then through real Celery (2 worker processes, concurrency 1 each, on REDIS_URL,
  default redis://127.0.0.1:6379/12), one run at a time. For every model step, from the stored
  timestamps: cycle = end of this step (its last ToolCall.finished_at, or Run.finished_at for the answer)
  - end of the previous one (Run.started_at for the first); overhead = cycle - Step.latency_ms (the model
  call as the client timed it) - the step's ToolCall.duration_ms (the tool as the gateway timed it).
  Target: median <= 15 ms;
- (b) 50 runs of 2-3 steps submitted at once on the 2 workers: wall time until all are finished, the
  count per final status, and the model requests made against the steps stored (a run stepped twice
  would show more requests than steps).

    .venv/bin/python bench/runs.py [N tool steps per run, default 5] [runs for (a), default 12]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/runs.py

The Celery queues of the bench's Redis database are purged before and after.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import percentile, quiet_console_logging

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHELL = "shell__run_command"
TARGET_MS = 15.0
CONCURRENT = 50
WORKERS = 2
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
VENV_BIN = Path(sys.executable).parent


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": statistics.median(values) if values else float("nan"),
        "p95": percentile(values, 95),
        "max": max(values) if values else float("nan"),
    }


# --- the child: one database ---------------------------------------------------------------------


def make_model_server() -> Any:
    from tests.fakes.llm import FakeLLMServer, text, tool_call

    class Responder(FakeLLMServer):
        """Answers from the conversation, not from a queue: `tool-steps=N` in the task gives N tool calls."""

        def __init__(self) -> None:
            super().__init__()
            self._local = threading.local()

        def _record(self, record: Any) -> None:  # runs in the request's handler thread, before _next_turn
            super()._record(record)
            self._local.body = record.body if isinstance(record.body, dict) else {}

        def _next_turn(self) -> Any:
            messages = getattr(self._local, "body", {}).get("messages", [])
            task = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
            wanted = int(m.group(1)) if (m := re.search(r"tool-steps=(\d+)", task)) else 0
            tag = m.group(1) if (m := re.search(r"#(\w+)", task)) else "x"
            done = sum(1 for m in messages if m.get("role") == "tool")
            if done < wanted:
                return tool_call(SHELL, {"command": f"echo {tag} {done}"})
            return text(f"finished after {done} tool steps")

    return Responder().start()


def setup() -> tuple[Any, Any]:
    """Django on the child's environment, migrated; the shell tool and a read-only Operator on the fake model."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    import django

    django.setup()
    quiet_console_logging()  # audit entries are logged at INFO; not to the terminal
    from django.core.management import call_command

    from operators.models import Operator
    from providers.services import create_provider
    from tools.models import Tool
    from tools.services import discover_all
    from vigilus.choices import Role
    from vigilus.services import create_user

    call_command("migrate", verbosity=0)
    model = make_model_server()
    admin, _ = create_user("bench", role=Role.ADMIN, password=uuid.uuid4().hex)
    discover_all()
    provider = create_provider(
        actor=admin, name="bench", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )
    operator = Operator.objects.create(name="bench", provider=provider, ceiling="read_only", max_steps=50)
    operator.tools.add(Tool.objects.get(qualified_name=SHELL))
    return model, operator


def step_overheads(run_ids: list[int]) -> dict[str, list[float]]:
    """Per model step: cycle, model latency, tool time and what is left (the orchestration), in ms."""
    from operators.models import Run, Step, ToolCall

    out: dict[str, list[float]] = {"overhead": [], "cycle": [], "model": [], "tool": [], "submit_to_routed": []}
    for run in Run.objects.filter(pk__in=run_ids):
        calls: dict[int, list[Any]] = {}
        for call in ToolCall.objects.filter(run=run):
            calls.setdefault(call.step_id, []).append(call)
        previous = run.started_at
        out["submit_to_routed"].append((run.started_at - run.created_at).total_seconds() * 1000)
        for step in Step.objects.filter(run=run).order_by("number"):
            mine = calls.get(step.pk, [])
            end = max(c.finished_at for c in mine) if mine else run.finished_at
            cycle = (end - previous).total_seconds() * 1000
            tool = sum(c.duration_ms for c in mine)
            out["cycle"].append(cycle)
            out["model"].append(step.latency_ms)
            out["tool"].append(tool)
            out["overhead"].append(cycle - step.latency_ms - tool)
            previous = end
    return out


def check_runs(run_ids: list[int], tool_steps: dict[int, int]) -> dict[str, Any]:
    from django.db.models import Count

    from operators.models import Run, Step

    statuses = dict(Run.objects.filter(pk__in=run_ids).order_by().values_list("status").annotate(n=Count("pk")))
    wrong = [
        run.pk
        for run in Run.objects.filter(pk__in=run_ids, status="completed")
        if run.steps != tool_steps[run.pk] + 1 or run.answer != f"finished after {tool_steps[run.pk]} tool steps"
    ]
    return {
        "statuses": statuses,
        "wrong_answers": wrong,
        "steps_stored": Step.objects.filter(run_id__in=run_ids).count(),
        "errors": sorted({e for e in Run.objects.filter(pk__in=run_ids).values_list("error", flat=True) if e})[:5],
    }


def in_process(n_steps: int, runs: int) -> dict[str, Any]:
    """advance() in a loop in this process; no message is sent (advance_run.delay is a no-op here)."""
    from operators import agent
    from operators.services import submit_task
    from operators.tasks import advance_run

    advance_run.delay = lambda *a, **k: None
    try:
        timings: list[float] = []

        def one(tag: str) -> int:
            run = submit_task(f"#{tag} tool-steps={n_steps}")
            again = agent.Next.MODEL
            while True:
                started = time.perf_counter()
                again = agent.advance(run.pk, "bench-in-process", expect=again)  # as advance_run does
                timings.append((time.perf_counter() - started) * 1000)
                if not again:
                    return run.pk

        for i in range(3):  # warm-up: imports (litellm), the MCP session, the database's caches
            one(f"warm{i}")
        timings.clear()
        ids = [one(f"inproc{i}") for i in range(runs)]
    finally:
        del advance_run.delay
    result = step_overheads(ids)
    result["advance_call"] = timings
    result["check"] = check_runs(ids, dict.fromkeys(ids, n_steps))
    return result


def start_workers(data_dir: Path) -> list[subprocess.Popen]:
    from vigilus.celery import app

    procs, names = [], []
    for i in range(WORKERS):
        name = f"bench-{i + 1}-{uuid.uuid4().hex[:6]}@localhost"
        out = open(data_dir / f"worker-{i + 1}.log", "wb")  # noqa: SIM115 - the worker holds it
        procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "celery"),
                    "--app",
                    "vigilus",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "1",
                    "--hostname",
                    name,
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=ROOT,
                env=dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        names.append(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit(f"a worker exited; see {data_dir}/worker-*.log")
        if len(app.control.ping(destination=names, timeout=0.5)) == WORKERS:
            return procs
    raise SystemExit("the workers did not answer a ping within 60 s")


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_finished(run_ids: list[int], timeout: float) -> float:
    from operators.choices import RunStatus
    from operators.models import Run

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not Run.objects.filter(pk__in=run_ids).exclude(status__in=RunStatus.finished()).exists():
            return time.monotonic() - started
        time.sleep(0.01)
    return float("nan")


def require_finished(run_ids: list[int], timeout: float) -> None:
    from operators.models import Run

    if math.isnan(wait_finished(run_ids, timeout)):
        moving = list(Run.objects.filter(pk__in=run_ids).values_list("pk", "status"))
        raise SystemExit(f"runs did not finish within {timeout:g} s: {moving}")


def through_celery(n_steps: int, runs: int, model: Any) -> dict[str, Any]:
    from django.conf import settings

    from operators.services import submit_task

    procs = start_workers(Path(settings.DATA_DIR))
    try:
        warm = [submit_task(f"#warm{i} tool-steps=2").pk for i in range(6)]  # both workers import and connect
        require_finished(warm, 120)
        ids = []
        for i in range(runs):  # one at a time: no step waits behind another run's
            ids.append(submit_task(f"#celery{i} tool-steps={n_steps}").pk)
            require_finished(ids[-1:], 60)
        result: dict[str, Any] = step_overheads(ids)
        result["check"] = check_runs(ids, dict.fromkeys(ids, n_steps))

        log(f"(b) {CONCURRENT} runs at once")
        requests_before = len(model.chat_requests)
        tool_steps = {}
        started = time.monotonic()
        for i in range(CONCURRENT):
            k = 1 + i % 2  # 2 or 3 model steps
            tool_steps[submit_task(f"#burst{i} tool-steps={k}").pk] = k
        submitted = time.monotonic() - started
        wall = wait_finished(list(tool_steps), 180)
        time.sleep(0.5)  # a late duplicate step would still ask the model
        check = check_runs(list(tool_steps), tool_steps)
        result["burst"] = {
            "submit_seconds": submitted,
            "wall_seconds": wall + submitted,
            "expected_steps": sum(k + 1 for k in tool_steps.values()),
            "model_requests": len(model.chat_requests) - requests_before,
            "finished": sum(n for s, n in check["statuses"].items() if s in ("completed", "failed", "cancelled")),
            **check,
        }
        return result
    finally:
        stop_workers(procs)


def child(n_steps: int, runs: int) -> dict[str, Any]:
    from django.db import connection

    model, _ = setup()
    from vigilus.celery import app

    app.control.purge()
    try:
        result: dict[str, Any] = {"database": f"{connection.vendor} ({connection.settings_dict['NAME']})"}
        log(f"{connection.vendor}: (a) in-process, {runs} runs x {n_steps} tool steps")
        result["in_process"] = in_process(n_steps, runs)
        log(f"{connection.vendor}: (a) through Celery, {WORKERS} workers, {runs} runs x {n_steps} tool steps")
        result["celery"] = through_celery(n_steps, runs, model)
        return result
    finally:
        app.control.purge()
        model.stop()


# --- the parent: one child per database, then the report ---------------------------------------------


def run_child(vendor: str, n_steps: int, runs: int) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="vigilus-bench-runs-")
    env = dict(
        os.environ,
        VIGILUS_DATA_DIR=data_dir,
        REDIS_URL=REDIS_URL,
        VIGILUS_REDIS_PREFIX=f"vigilus-bench-runs-{os.getpid()}",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DATABASE_URL", None)
    database = None
    server = os.environ.get("DATABASE_URL", "")
    if vendor == "postgresql":
        import psycopg

        database = f"vigilus_bench_runs_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["DATABASE_URL"] = server.rsplit("/", 1)[0] + f"/{database}"
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n_steps), str(runs)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if out.returncode:
            raise SystemExit(f"{vendor} bench failed (worker logs in {data_dir})")
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        if database:
            import psycopg

            with psycopg.connect(server, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def report(result: dict[str, Any], n_steps: int, runs: int) -> None:
    print(f"\n== {result['database']} ==")
    print(f"(a) per model step, {runs} runs x ({n_steps} tool steps + the answer), ms: median / p95 / max")
    for mode in ("in_process", "celery"):
        data = result[mode]
        title = "in-process advance() loop" if mode == "in_process" else f"Celery, {WORKERS} workers x 1"
        print(f"  {title}")
        for key, label in (
            ("overhead", "overhead (cycle - model - tool)"),
            ("cycle", "step cycle"),
            ("model", "model latency (Step.latency_ms)"),
            ("tool", "tool time (ToolCall.duration_ms)"),
            ("submit_to_routed", "submit -> routed (per run)"),
            ("advance_call", "one advance() call"),
        ):
            if key in data:
                s = summary(data[key])
                print(f"    {label:36} {s['median']:8.1f} {s['p95']:8.1f} {s['max']:8.1f}   (n={s['n']})")
        median = summary(data["overhead"])["median"]
        verdict = "meets" if median <= TARGET_MS else "MISSES"
        print(f"    -> {verdict} the target of <= {TARGET_MS:g} ms per step (median {median:.1f} ms)")
        check = data["check"]
        print(f"    runs: {check['statuses']}; wrong answers: {len(check['wrong_answers'])}")
    burst = result["celery"]["burst"]
    print(f"(b) {CONCURRENT} runs of 2-3 steps submitted at once, {WORKERS} workers x 1")
    print(f"    wall time {burst['wall_seconds']:.2f} s (submitting took {burst['submit_seconds']:.2f} s)")
    print(
        f"    finished {burst['finished']}/{CONCURRENT}, lost {CONCURRENT - burst['finished']}; "
        f"by status {burst['statuses']}"
    )
    print(
        f"    steps stored {burst['steps_stored']} (expected {burst['expected_steps']}), "
        f"model requests {burst['model_requests']}, wrong answers {len(burst['wrong_answers'])}"
    )
    if burst["errors"]:
        print(f"    errors: {burst['errors']}")


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(child(int(argv[1]), int(argv[2])), default=str))
        return
    n_steps = int(argv[0]) if argv else 5
    runs = int(argv[1]) if len(argv) > 1 else 12
    vendors = ["sqlite"] + (["postgresql"] if os.environ.get("DATABASE_URL", "").startswith("postgres") else [])
    print(f"agent loop bench: Redis {REDIS_URL}, databases: {', '.join(vendors)}")
    for vendor in vendors:
        report(run_child(vendor, n_steps, runs), n_steps, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
