"""What the HTTP API path costs: a task given through `POST /api/v1/tasks` and polled with `GET /api/v1/runs/{id}`
until its run has finished, against the same task through `vigilus task --wait`.

For each database (SQLite in a throwaway data directory; PostgreSQL in a throwaway database on
VIGILUS_BENCH_POSTGRES, default postgres://postgres@127.0.0.1:5432/postgres, when named), in a child process:

- the fake model of the tests (tests/fakes/llm.py), answering every request at once with a text, so each run is
  one model step; a read-only Operator on it, named in every task (no routing call); a submitter API token;
- the real processes: daphne serving the dashboard and the API on 127.0.0.1, two Celery workers (as bench/runs.py
  starts them) on REDIS_URL (default redis://127.0.0.1:6379/13, its queue purged before and after);
- API: RUNS tasks one after another, each `POST /api/v1/tasks` then `GET /api/v1/runs/{id}` every POLL s (what
  `vigilus task --wait` does against the database) until the run is settled; and again polling every 20 ms, which
  leaves the HTTP path's own cost (the token's rate limit is lifted for the bench: the default 120 requests a
  minute is less than a 0.2 s poll asks);
- CLI: RUNS times `vigilus task TEXT --operator bench --wait --json`, a process of its own each, as a script runs it;
  and `vigilus task --help` alone: what starting the command costs before it does anything;
- for both, the run itself (its `created_at` to `finished_at`, as stored), so that what is left is the path's cost.

    .venv/bin/python bench/api_vs_cli.py [RUNS, default 10] [sqlite|postgresql ...]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import percentile, throwaway_vigilus
from benchlib import run_child as benchlib_run_child

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent

POLL = 0.2  # seconds between polls: `vigilus task --wait` checks the run every 0.2 s
TIGHT_POLL = 0.02
WARMUP = 3
SETTLED = {"completed", "failed", "cancelled", "awaiting_approval", "awaiting_plan_approval"}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "p95": percentile(values, 95), "n": len(values)}


def start_daphne(port: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "vigilus.asgi:application"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.1)
    stop_daphne(process)
    raise SystemExit(f"daphne did not listen on {port} within 60 s:\n{log_path.read_text()[-3000:]}")


def stop_daphne(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def setup() -> tuple[Any, str]:
    """The fake model, a read-only Operator `bench` on it, and a submitter token of the first admin's."""
    from operators.models import Operator
    from providers.services import create_provider
    from tests.fakes.llm import FakeLLMServer
    from vigilus.choices import Role
    from vigilus.services import create_token, create_user

    model = FakeLLMServer().start()  # no script: every request is answered text("done") at once
    admin, _ = create_user("bench", role=Role.ADMIN, password=os.urandom(16).hex())
    provider = create_provider(
        actor=admin, name="bench", kind="openai_compatible", base_url=model.url + "/v1", default_model="m"
    )
    Operator.objects.create(name="bench", provider=provider, ceiling="read_only")
    _, token = create_token(admin, name="bench", role="submitter")
    return model, token


def run_seconds(run_id: int) -> float:
    """The run itself, as stored: created to finished."""
    from operators.models import Run

    run = Run.objects.get(pk=run_id)
    if run.status != "completed":
        raise SystemExit(f"run #{run_id} ended {run.status}: {run.error}")
    return (run.finished_at - run.created_at).total_seconds()


def through_api(base: str, token: str, poll: float, tag: str) -> tuple[float, float, float, int]:
    """(seconds from the POST to the poll that saw the run settled, the POST alone, one poll, the run's id)."""
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    started = time.perf_counter()
    answer = http.post(f"{base}/api/v1/tasks", json={"task": f"say done #{tag}", "operator": "bench"}, timeout=30)
    submitted = time.perf_counter() - started
    if answer.status_code != 201:
        raise SystemExit(f"POST /api/v1/tasks answered {answer.status_code}: {answer.text[:500]}")
    run_id = answer.json()["id"]
    polls: list[float] = []
    while True:
        time.sleep(poll)
        asked = time.perf_counter()
        answer = http.get(f"{base}/api/v1/runs/{run_id}", timeout=30)
        polls.append(time.perf_counter() - asked)
        if answer.status_code != 200:
            raise SystemExit(f"GET /api/v1/runs/{run_id} answered {answer.status_code}: {answer.text[:500]}")
        status = answer.json()["status"]
        if status in SETTLED:
            return time.perf_counter() - started, submitted, statistics.median(polls), run_id
        if time.perf_counter() - started > 120:
            raise SystemExit(f"run #{run_id} still {status} after 120 s")


def through_cli(tag: str) -> tuple[float, int]:
    """(seconds for `vigilus task ... --wait --json` to exit, the run's id)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(VENV_BIN / "vigilus"), "task", f"say done #{tag}", "--operator", "bench", "--wait", "--json"],
        cwd="/",
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"vigilus task exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, json.loads(done.stdout)["id"]


def cli_start() -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(VENV_BIN / "vigilus"), "task", "--help"],
        cwd="/",
        env=os.environ.copy(),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def repeat(runs: int, one: Callable[[str], tuple[float, ...]], tag: str) -> list[tuple[float, ...]]:
    for i in range(WARMUP):
        one(f"{tag}-warm{i}")
    return [one(f"{tag}{i}") for i in range(runs)]


def child(vendor: str, runs: int, database_url: str | None) -> dict[str, Any]:
    throwaway_vigilus(database_url)
    from django.conf import settings
    from django.db import connection
    from runs import start_workers, stop_workers

    from tests.ports import free_port
    from vigilus.celery import app

    model, token = setup()
    app.control.purge()
    port = free_port()
    daphne = start_daphne(port, Path(settings.DATA_DIR) / "daphne.log")
    workers = start_workers(Path(settings.DATA_DIR))
    base = f"http://127.0.0.1:{port}"
    try:
        api = repeat(runs, lambda tag: through_api(base, token, POLL, tag), "api")
        tight = repeat(runs, lambda tag: through_api(base, token, TIGHT_POLL, tag), "tight")
        cli = repeat(runs, through_cli, "cli")
        starts = [cli_start() for _ in range(max(3, runs // 2))]
        return {
            "server": f"{connection.vendor} "
            + (
                ".".join(map(str, connection.Database.sqlite_version_info))
                if vendor == "sqlite"
                else ".".join(map(str, divmod(connection.pg_version, 10000)))
            ),
            "started": datetime.now().isoformat(timespec="seconds"),
            "api": [e for e, *_ in api],
            "api_run": [run_seconds(r[-1]) for r in api],
            "api_post": [r[1] for r in api + tight],
            "api_get": [r[2] for r in api + tight],
            "tight": [e for e, *_ in tight],
            "tight_run": [run_seconds(r[-1]) for r in tight],
            "cli": [e for e, _ in cli],
            "cli_run": [run_seconds(r) for _, r in cli],
            "cli_start": starts,
        }
    finally:
        stop_workers(workers)
        stop_daphne(daphne)
        app.control.purge()
        model.stop()


def run_child(vendor: str, runs: int) -> dict[str, Any]:
    env = dict(os.environ)
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")
    env["VIGILUS_REDIS_PREFIX"] = f"vigilus-bench-api-{os.getpid()}"
    env["VIGILUS_API_RATE_LIMIT"] = "100000"  # 120 a minute (the default) is less than polling every 20 ms asks
    return benchlib_run_child(__file__, vendor, [str(runs)], env, "vigilus_bench_api")


def report(result: dict[str, Any], runs: int) -> None:
    ms = {key: summary([v * 1000 for v in values]) for key, values in result.items() if isinstance(values, list)}
    print(f"\n== {result['server']} ({runs} runs per path, each one model step on the fake model) ==")
    print(f"{'':54}{'median':>10}{'p95':>10}   ms")
    rows = [
        (f"API, polling every {POLL:g} s: POST to settled", "api"),
        ("    of which the run itself (created -> finished)", "api_run"),
        (f"API, polling every {TIGHT_POLL * 1000:g} ms: POST to settled", "tight"),
        ("    of which the run itself", "tight_run"),
        ("    one POST /api/v1/tasks (201)", "api_post"),
        ("    one GET /api/v1/runs/{id}", "api_get"),
        ("`vigilus task --wait --json`: start to exit", "cli"),
        ("    of which the run itself", "cli_run"),
        ("`vigilus task --help`: starting the command", "cli_start"),
    ]
    for label, key in rows:
        print(f"{label:54}{ms[key]['median']:>10.0f}{ms[key]['p95']:>10.0f}")
    api_over = ms["api"]["median"] - ms["api_run"]["median"]
    tight_over = ms["tight"]["median"] - ms["tight_run"]["median"]
    cli_over = ms["cli"]["median"] - ms["cli_run"]["median"]
    print(
        f"path overhead beyond the run (medians): API {api_over:.0f} ms at a {POLL:g} s poll, {tight_over:.0f} ms at "
        f"{TIGHT_POLL * 1000:g} ms; CLI {cli_over:.0f} ms, of which {ms['cli_start']['median']:.0f} ms is starting "
        "Python and Django"
    )


def main(argv: list[str]) -> None:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], int(argv[2]), os.environ.get("DATABASE_URL"))))
        return
    runs = int(argv[0]) if argv and argv[0].isdigit() else 10
    vendors = [a for a in argv if not a.isdigit()] or ["sqlite"]
    for vendor in vendors:
        report(run_child(vendor, runs), runs)


if __name__ == "__main__":
    main(sys.argv[1:])
