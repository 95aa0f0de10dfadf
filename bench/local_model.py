"""Vigilus against a real local model server: its own time per step, and what loading litellm costs a worker.

The server is llama-cpp-python's (SmolLM2-135M-Instruct, context 8,192, chatml-function-calling), built and
started exactly as the local-model tests do (tests/local_models/environment.py), behind the tests' recording
proxy, which times each request from sending it to the server to its answer's last byte.

(a) Steps: runs of an Operator with the shell tool, stepped by `operators.agent.advance` in this process (no
    Celery) on a throwaway SQLite Vigilus. Each model step but the last is driven to call the shell tool
    (`echo`), so a run alternates model steps and tool steps. For a model step, Vigilus's own time = the
    step's wall time - the server's time for its request (context fitting, litellm building the request and
    reading the answer, the transaction that stores the step, audit, the live update). For a tool step, own
    time = wall time - the tool's own duration as the gateway timed it.
(b) litellm per worker process: in fresh processes, `python -X importtime -c "import litellm"` (litellm's
    cumulative import time), and Django set up then two complete() calls of one token against the server:
    the first pays the lazy import and the first-call setup, the second does not; the difference is the
    one-off cost, and the resident memory it adds. `--before PATH` runs (b) on another checkout too (e.g.
    `git archive <commit> | tar -x -C PATH`), for a before/after.

    .venv/bin/python bench/local_model.py [runs, default 3] [tool steps per run, default 4] [--before PATH]
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import percentile, throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHELL = "shell__run_command"
args = [a for a in sys.argv[1:] if not a.startswith("--")]
RUNS = int(args[0]) if args else 3
TOOL_STEPS = int(args[1]) if len(args) > 1 else 4
BEFORE = sys.argv[sys.argv.index("--before") + 1] if "--before" in sys.argv else None

FIRST_CALLS = """
import sys, time
import django
django.setup()
import logging
logging.disable(logging.CRITICAL)
from providers import client
from providers.models import Provider
def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
provider = Provider(name="probe", kind="openai_compatible", base_url=sys.argv[1], default_model="smollm2")
before = rss_mb()
walls = []
for _ in range(2):
    started = time.perf_counter()
    client.complete(provider, [{"role": "user", "content": "Say ok."}], max_tokens=1, timeout=120)
    walls.append((time.perf_counter() - started) * 1000)
print(walls[0], walls[1], rss_mb() - before)
"""


def summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):7.1f} ms   p95 {percentile(values, 95):7.1f} ms   "
        f"max {max(values):7.1f} ms   (n={len(values)})"
    )


def litellm_cost(root: Path, server_url: str) -> dict[str, float]:
    """(b) for the checkout at `root`, in fresh processes."""
    env_dir = tempfile.mkdtemp(prefix="vigilus-bench-")
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "vigilus.settings",
        "VIGILUS_DATA_DIR": env_dir,
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "HOME": str(Path.home()),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=root, env=env, check=True)
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import litellm"], cwd=root, env=env, capture_output=True, text=True
    ).stderr
    cumulative = max(
        (int(m.group(1)) for m in re.finditer(r"import time:\s+\d+ \|\s+(\d+) \| litellm$", trace, re.MULTILINE)),
        default=0,
    )
    probes = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", FIRST_CALLS, server_url], cwd=root, env=env, capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        probes.append([float(v) for v in out.stdout.split()[-3:]])
    first, second, rss = (statistics.median(p[i] for p in probes) for i in range(3))
    return {"import_ms": cumulative / 1000, "first_ms": first, "second_ms": second, "rss_mb": rss}


first_step: list[float] = []


def steps(proxy: object) -> tuple[list[float], list[float], list[float]]:
    """(a): own time of each model step and tool step, and the server's time of each model request."""
    from django.conf import settings
    from django.contrib.auth.models import User

    from operators import agent
    from operators.models import Operator, Run, ToolCall
    from operators.services import submit_task
    from providers.services import create_provider
    from tools.models import Tool
    from tools.services import discover_all

    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    actor = User.objects.create_user("bench")
    provider = create_provider(
        actor=actor, name="llama", kind="openai_compatible", base_url=proxy.url, default_model="smollm2"
    )
    operator = Operator.objects.create(
        name="bench", provider=provider, ceiling="read_only", max_steps=TOOL_STEPS + 1, system_prompt="Be brief."
    )
    operator.tools.add(Tool.objects.get(qualified_name=SHELL))
    model_own, tool_own, server = [], [], []
    for run_number in range(RUNS):
        for step_number in range(TOOL_STEPS):
            proxy.drive(SHELL, {"command": f"echo run {run_number} step {step_number}"})
        run = submit_task("Check the host, step by step.", operator=operator)
        agent.advance(run.pk, "bench")  # routing: no model call with one Operator
        expect = agent.Next.MODEL
        while expect != agent.Next.STOP:
            chats_before = len(proxy.chats)
            calls_done = set(ToolCall.objects.filter(run=run, status="done").values_list("pk", flat=True))
            started = time.perf_counter()
            next_expect = agent.advance(run.pk, "bench", expect)
            wall = (time.perf_counter() - started) * 1000
            made = proxy.chats[chats_before:]
            if made:
                server_ms = sum(e.elapsed_ms for e in made)
                if first_step:
                    server.append(server_ms)
                    model_own.append(wall - server_ms)
                else:  # this process's first model call: it imports litellm, reported in (b)
                    first_step.append(wall - server_ms)
            else:
                done = ToolCall.objects.filter(run=run, status="done").exclude(pk__in=calls_done)
                tool_own.append(wall - sum(c.duration_ms for c in done))
            expect = next_expect
        run = Run.objects.get(pk=run.pk)
        print(f"  run {run.pk}: {run.status}, {run.steps} model steps {run.error[:80]}", file=sys.stderr, flush=True)
    print("  model steps' own ms: " + " ".join(f"{v:.0f}" for v in model_own), file=sys.stderr, flush=True)
    return model_own, tool_own, server


def main() -> None:
    from tests.local_models.environment import llama_server
    from tests.local_models.proxy import RecordingProxy

    throwaway_vigilus()
    with tempfile.TemporaryDirectory() as logs, llama_server(Path(logs)) as llama, RecordingProxy(llama.url) as proxy:
        model_own, tool_own, server = steps(proxy)
        after = litellm_cost(ROOT, llama.url)
        before = litellm_cost(Path(BEFORE), llama.url) if BEFORE else None

    print(
        f"Vigilus against llama-cpp-python's server (SmolLM2-135M, n_ctx 8192): {RUNS} runs x {TOOL_STEPS} tool steps"
    )
    print("(a) Vigilus's own time per step (everything but the server's generation / the tool's own run):")
    print(f"    model step: {summary(model_own)}")
    print(f"    (the process's first model step, importing litellm: {summary(first_step)})")
    print(f"    tool step:  {summary(tool_own)}")
    print(f"    (server's time per model request: {summary(server)})")
    print("(b) litellm per worker process (fresh processes, median of 3):")
    rows = [("after (this checkout)", after)] + ([("before (" + BEFORE + ")", before)] if before else [])
    for label, cost in rows:
        print(
            f"    {label}: import litellm {cost['import_ms']:.0f} ms (-X importtime, cumulative); "
            f"first complete() {cost['first_ms']:.0f} ms, second {cost['second_ms']:.0f} ms -> one-off "
            f"{cost['first_ms'] - cost['second_ms']:.0f} ms per process, +{cost['rss_mb']:.0f} MB resident"
        )
    print(json.dumps({"model_step_own_median_ms": statistics.median(model_own) if model_own else None}))


if __name__ == "__main__":
    main()
