"""The mission's example, per-call strict vs plan mode: how many human decisions, how long from task to done.

The example (issue 21): `apt update && apt upgrade -y` on five hosts, then restarting two services. The hosts
are five real OpenSSH servers on 127.0.0.1 (tests/infra/sshd.py, as the SSH tests and bench/ssh_fanout.py
start them), added to the inventory and their host keys pinned (tools.inventory.services.add_server and
tools.inventory.connections.test_server, what `manage.py servers add` and `servers test --trust-host-key`
call), logged into as the farm's plain user.
Nothing on this machine is upgraded or restarted: `apt` on the hosts' PATH is the SSH tests' shim and
`systemctl` one made here beside it; each records its call per sshd port, and every run is checked to have
reached exactly the five hosts with both apt commands and the two restarts, once each.

The model is the tests' scripted FakeLLMServer: one tool call per model turn (`ssh__run_command`), then its
answer; in plan mode the same calls become plan steps, then a summary, then (after the apply) the answer.
Two shapes of the same work:

- per host: five calls `apt update && apt upgrade -y` with target bench1..bench5, then
  `systemctl restart nginx` on bench1 and `systemctl restart postgresql` on bench2 (7 exec calls);
- tag: one call on target `bench` (the ssh server fans it out to the five hosts; one grant names the
  host list), then the same two restarts (3 exec calls).

Both on one Operator (ceiling exec, jit_mode strict, the ssh tools): "strict" submits the task as it is, and
the "person" approves each access request (jit.services.approve, this exact call once: the dashboard's
default); "plan" submits it with plan mode (`task --plan`), and the person approves the whole plan once
(operators.plans.approve, no step left out). The person is this process polling the database every
POLL_SECONDS and deciding once the run is parked on the decision and its worker has let go of it (a person
at a dashboard is slower than that anyway). A real person's reaction time is NOT in the figures: one
reaction per decision comes on top; the "waiting" column is the time runs spent parked on a decision,
bounded by the poll.

With --eager the person decides as soon as a request (a plan) shows, even while the worker that parked the
run still holds it. That decision's wake-up (advance_run) finds the run held and returns; the worker that
parked the run sends it on once it lets go (operators/tasks.py, since this bench found the wake-up lost). Were
it lost again, the run would stay parked until beat's reconciler, and the bench stops with "the decision's
wake-up was lost" within STUCK_SECONDS.

The stack: a fresh data directory (SQLite, keys), one Celery worker as the Procfile starts it (concurrency 2,
prefork; no beat: nothing here needs a schedule) on REDIS_URL (default redis://127.0.0.1:6379/12), whose
queues are purged before and after; runs submitted with operators.services.submit_task like the dashboard
and the `task` command. Wall time = Run.created_at -> Run.finished_at (stored timestamps). One unmeasured
warm-up run per row first (imports, the MCP session, SSH connections in the worker), then N runs per row,
the rows interleaved; the table shows the median (and min..max).

    .venv/bin/python bench/plans.py [-n N] [--shape per-host|tag|both] [--eager]
    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/plans.py -n 5

Needs root (the sshd run as root, and the farm makes its own user), openssh-server and openssh-client.
Everything started is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchlib import throwaway_vigilus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VENV_BIN = Path(sys.executable).parent

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/12")
HOSTS = 5
TAG = "bench"
TOOL = "ssh__run_command"
UPGRADE = "apt update && apt upgrade -y"
RESTARTS = (("bench1", "nginx"), ("bench2", "postgresql"))
TASK = "apt update && apt upgrade -y on the five bench hosts, then restart nginx on bench1 and postgresql on bench2"
POLL_SECONDS = 0.01
RUN_TIMEOUT = 120.0
STUCK_SECONDS = 5.0  # parked, every decision made, no worker on it: a lost wake-up
MODES = ("strict", "plan")
SHAPES = ("per-host", "tag")

SYSTEMCTL_SHIM = """#!/bin/sh
# Bench shim for systemctl: records the call (and which host ran it) instead of touching services.
port=$(echo "$SSH_CONNECTION" | cut -d' ' -f4)
echo "systemctl $* (port $port)" >> "{log_dir}/systemctl-$port.log"
echo "shim: systemctl $*"
"""


def log(message: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/plans.py",
        description="Human decisions and wall time from task to done for the mission's example (apt upgrade on "
        "five loopback SSH hosts, then two service restarts), per-call strict vs plan mode.",
    )
    parser.add_argument("-n", "--repetitions", type=int, default=3, help="measured runs per row (default 3)")
    parser.add_argument(
        "--shape",
        choices=(*SHAPES, "both"),
        default="both",
        help="per-host: one call per host (7 calls); tag: one fan-out call on the tag (3 calls); default both",
    )
    parser.add_argument(
        "--eager",
        action="store_true",
        help="decide as soon as a decision shows, even while the worker that parked the run still holds it "
        "(shows the lost wake-up described in the docstring)",
    )
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    return args


def require_programs() -> None:
    missing = [
        f"{program} ({package})"
        for program, package in (("sshd", "openssh-server"), ("ssh-keygen", "openssh-client"))
        if shutil.which(program) is None and not Path("/usr/sbin", program).exists()
    ]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}; apt-get install --no-install-recommends openssh-server")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the hosts are sshd processes, and the farm makes its own user")


# --- the lab: hosts, inventory, model, Operator ------------------------------------------------------


def start_hosts(work: Path) -> Any:
    """Five sshd hosts, with a systemctl shim beside the SSH tests' apt shim on their PATH."""
    from tests.infra import sshd

    farm = sshd.start_farm(work / "farm", HOSTS, password_hosts=0)
    shim = farm.shim_dir / "systemctl"
    shim.write_text(SYSTEMCTL_SHIM.format(log_dir=farm.log_dir))
    shim.chmod(0o755)
    return farm


def add_inventory(farm: Any) -> dict[int, str]:
    """The hosts as inventory servers bench1..bench5 tagged `bench`, host keys pinned; returns port -> name."""
    from tools.inventory.connections import test_server
    from tools.inventory.services import add_server

    key_text = farm.client_key.read_text()
    names = {}
    for i, host in enumerate(farm.hosts, start=1):
        server = add_server(
            name=f"bench{i}",
            address="127.0.0.1",
            port=host.port,
            username=farm.password_user,
            private_key=key_text,
            tags=TAG,
        )
        result = test_server(server, trust_host_key=True)
        if not result.ok:
            raise SystemExit(f"could not pin {server.name}: {result.message}")
        names[host.port] = server.name
    return names


def make_operator(model_url: str) -> tuple[Any, Any]:
    """A strict Operator (ceiling exec) with the ssh tools on the fake model, and the person who decides."""
    from operators.models import Operator
    from providers.services import create_provider
    from tools.models import Tool
    from tools.services import discover_all
    from vigilus.choices import Role
    from vigilus.services import create_user

    person, _ = create_user("bench-approver", role=Role.ADMIN, password=secrets.token_urlsafe(16))
    report = discover_all()
    if not any(s.name == "ssh" and s.status == "ok" for s in report.servers):
        raise SystemExit(f"discovery of the ssh server failed: {report}")
    provider = create_provider(
        actor=person, name="bench", kind="openai_compatible", base_url=model_url + "/v1", default_model="m"
    )
    operator = Operator.objects.create(
        name="patcher", provider=provider, ceiling="exec", jit_mode="strict", max_steps=50
    )
    operator.tools.add(*Tool.objects.filter(server__name="ssh"))
    return operator, person


def script(shape: str, mode: str) -> list[Any]:
    """The model's turns for one run: one exec call per turn, then the answer (plan mode: the plan's summary,
    then the answer once the plan is applied)."""
    from tests.fakes.llm import text, tool_call

    if shape == "per-host":
        upgrades = [
            tool_call(TOOL, {"command": UPGRADE, "target": f"bench{i}"}, text=f"Upgrade the packages of bench{i}.")
            for i in range(1, HOSTS + 1)
        ]
    else:
        upgrades = [tool_call(TOOL, {"command": UPGRADE, "target": TAG}, text="Upgrade the packages of all five.")]
    restarts = [
        tool_call(TOOL, {"command": f"systemctl restart {unit}", "target": host}, text=f"Restart {unit} on {host}.")
        for host, unit in RESTARTS
    ]
    turns = [*upgrades, *restarts]
    if mode == "plan":
        turns.append(text(f"Plan: upgrade the five hosts, then restart {RESTARTS[0][1]} and {RESTARTS[1][1]}."))
    turns.append(text("The five hosts are upgraded; nginx and postgresql are restarted."))
    return turns


# --- the worker ----------------------------------------------------------------------------------


def start_worker(data_dir: Path) -> subprocess.Popen:
    """One worker as the Procfile starts it (prefork, concurrency 2), its log in the data directory."""
    from vigilus.celery import app

    name = f"bench-plans-{uuid.uuid4().hex[:6]}@localhost"
    out = open(data_dir / "worker.log", "wb")  # noqa: SIM115 - the worker holds it
    proc = subprocess.Popen(
        [
            *(str(VENV_BIN / "celery"), "--app", "vigilus", "worker", "--loglevel", "INFO", "--concurrency", "2"),
            *("--hostname", name, "--without-mingle", "--without-gossip"),
        ],
        cwd=ROOT,
        env=dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1"),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the worker exited:\n{worker_log_tail(data_dir)}")
        if app.control.ping(destination=[name], timeout=0.5):
            return proc
    stop_worker(proc)
    raise SystemExit("the worker did not answer a ping within 60 s")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def worker_log_tail(data_dir: Path) -> str:
    path = data_dir / "worker.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no worker log)"


# --- one run -------------------------------------------------------------------------------------


@dataclass
class Sample:
    decisions: int
    model_calls: int
    exec_calls: int
    wall: float  # seconds, Run.created_at -> Run.finished_at
    waiting: float  # seconds the run was parked on a pending decision


@dataclass
class Row:
    shape: str
    mode: str
    samples: list[Sample] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(getattr(s, name) for s in self.samples)

    def spread(self, name: str) -> str:
        values = [getattr(s, name) for s in self.samples]
        return f"{min(values):.2f}..{max(values):.2f}"

    def counts(self, name: str) -> str:
        values = sorted({getattr(s, name) for s in self.samples})
        return "/".join(map(str, values))  # the same every time, or it shows


def shim_calls(farm: Any) -> dict[str, list[str]]:
    """Every line the shims recorded, by file (apt-PORT, systemctl-PORT)."""
    return {entry.stem: entry.read_text().splitlines() for entry in farm.log_dir.glob("*.log")}


def decide_when_pending(run_id: int, mode: str, person: Any, *, eager: bool = False) -> int:
    """Play the person until the run is finished: approve each pending request (strict) or the plan (plan mode)
    once the run is parked on it and its worker has let go of it (eager: as soon as it shows). Returns the
    decisions made."""
    from jit import services as jit
    from jit.choices import RequestStatus
    from jit.models import AccessRequest
    from operators import plans
    from operators.choices import PlanStatus, RunStatus
    from operators.models import Plan, Run

    decisions = 0
    stuck_since = None
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status, holder = Run.objects.filter(pk=run_id).values_list("status", "lease_owner").get()
        if status in RunStatus.finished():
            return decisions
        pending = (
            list(AccessRequest.objects.filter(run_id=run_id, status=RequestStatus.PENDING).values_list("pk", flat=True))
            if mode == "strict"
            else list(
                Plan.objects.filter(run_id=run_id, status=PlanStatus.AWAITING_APPROVAL).values_list("pk", flat=True)
            )
        )
        if pending and (eager or (status in RunStatus.parked() and not holder)):
            if mode == "strict":
                for request_id in pending:
                    jit.approve(request_id, actor=person)
            else:
                plans.approve(run_id, actor=person)
            decisions += len(pending)
        parked_and_decided = status in RunStatus.parked() and not holder and not pending
        stuck_since = (stuck_since or time.monotonic()) if parked_and_decided else None
        if stuck_since is not None and time.monotonic() - stuck_since > STUCK_SECONDS:
            raise SystemExit(
                f"run #{run_id} is {status} with every decision made and no worker on it for {STUCK_SECONDS:g} s: "
                "the decision's wake-up was lost (it came while the worker that parked the run still held it)"
            )
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"run #{run_id} did not finish within {RUN_TIMEOUT:g} s: {status}")


def parked_seconds(run_id: int) -> float:
    """How long the run waited on decisions: each request (plan) from pending to decided."""
    from jit.models import AccessRequest
    from operators.models import Plan
    from vigilus.services import site_settings

    waited = sum(
        ((r.decided_at - r.created_at) for r in AccessRequest.objects.filter(run_id=run_id)), start=timedelta()
    )
    expiry = timedelta(minutes=site_settings().request_expiry_minutes)  # a plan is pending from expires_at - expiry
    for plan in Plan.objects.filter(run_id=run_id, decided_at__isnull=False):
        waited += plan.decided_at - (plan.expires_at - expiry)
    return waited.total_seconds()


def check_run(run: Any, shape: str, mode: str, before: dict[str, list[str]], farm: Any, names: dict[int, str]) -> int:
    """The run completed, every exec call ran once on the right hosts (as the shims saw it); the calls made."""
    from operators import plans
    from operators.choices import PlanStatus, PlanStepStatus, RunStatus

    exec_calls = HOSTS + len(RESTARTS) if shape == "per-host" else 1 + len(RESTARTS)
    if run.status != RunStatus.COMPLETED:
        raise SystemExit(f"run #{run.pk} ({shape}, {mode}) ended {run.status}: {run.error}")
    if mode == "plan":
        plan = plans.latest(run)
        statuses = [s.status for s in plan.steps.all()] if plan else []
        if plan is None or plan.status != PlanStatus.APPLIED or statuses != [PlanStepStatus.SUCCEEDED] * exec_calls:
            raise SystemExit(f"run #{run.pk}: the plan is {plan and plan.status}, steps {statuses}")
    after = shim_calls(farm)
    new = {name: lines[len(before.get(name, [])) :] for name, lines in after.items()}
    new = {name: lines for name, lines in new.items() if lines}
    expected = {f"apt-{port}": ["apt update", "apt upgrade -y"] for port in names}
    port_of = {name: port for port, name in names.items()}
    for host, unit in RESTARTS:
        expected[f"systemctl-{port_of[host]}"] = [f"systemctl restart {unit}"]
    seen = {name: [line.rsplit(" (port", 1)[0] for line in lines] for name, lines in new.items()}
    if seen != expected:
        raise SystemExit(f"run #{run.pk} ({shape}, {mode}): the hosts saw {seen}, expected {expected}")
    return exec_calls


def one_run(
    shape: str, mode: str, *, operator: Any, person: Any, model: Any, farm: Any, names: dict, eager: bool
) -> Sample:
    from operators.models import Run
    from operators.services import submit_task

    model.script(*script(shape, mode))
    requests_before = len(model.chat_requests)
    shims_before = shim_calls(farm)
    run = submit_task(TASK, operator=operator, plan_mode=mode == "plan")
    decisions = decide_when_pending(run.pk, mode, person, eager=eager)
    run = Run.objects.get(pk=run.pk)
    exec_calls = check_run(run, shape, mode, shims_before, farm, names)
    model_calls = len(model.chat_requests) - requests_before
    if model_calls != run.steps:
        raise SystemExit(f"run #{run.pk}: {model_calls} model requests for {run.steps} stored steps")
    return Sample(
        decisions=decisions,
        model_calls=model_calls,
        exec_calls=exec_calls,
        wall=(run.finished_at - run.created_at).total_seconds(),
        waiting=parked_seconds(run.pk),
    )


# --- report ----------------------------------------------------------------------------------------


def report(rows: list[Row], n: int, eager: bool) -> None:
    print(
        f"\n`{UPGRADE}` on {HOSTS} loopback OpenSSH hosts, then `systemctl restart` of 2 services "
        f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})"
    )
    print("apt and systemctl on the hosts are stand-in shims that record the call over SSH (nothing is installed")
    print(f"or restarted); scripted fake model; one Celery worker (concurrency 2); median of {n} runs per row")
    when = "as soon as it shows" if eager else "once the run is parked on it"
    print(f"the person approves by program {when}: a real person adds one reaction time per decision\n")
    header = (
        f"{'shape':<9}{'mode':<8}{'exec calls':>11}{'decisions':>11}{'model calls':>13}"
        f"{'wall s':>9}{'(min..max)':>14}{'waiting s':>11}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.shape:<9}{row.mode:<8}{row.counts('exec_calls'):>11}{row.counts('decisions'):>11}"
            f"{row.counts('model_calls'):>13}{row.median('wall'):>9.2f}{row.spread('wall'):>14}"
            f"{row.median('waiting'):>11.2f}"
        )
    print(
        "\nexec calls: the run's write/exec calls (each needs a grant); decisions: approvals the person made; "
        "model calls: chat requests to the model; wall: task submitted -> run finished (stored timestamps); "
        f"waiting: time parked on pending decisions (the person polls every {POLL_SECONDS * 1000:.0f} ms)."
    )
    for shape in dict.fromkeys(row.shape for row in rows):
        by_mode = {row.mode: row for row in rows if row.shape == shape}
        if set(by_mode) != set(MODES):
            continue
        strict, plan = by_mode["strict"], by_mode["plan"]
        extra_calls = plan.median("model_calls") - strict.median("model_calls")
        print(
            f"{shape}: plan mode asks {plan.median('decisions'):.0f} decision(s) instead of "
            f"{strict.median('decisions'):.0f}, with {extra_calls:+.0f} model call(s); "
            f"wall time {plan.median('wall') / strict.median('wall'):.2f}x strict's"
        )


def clean_redis() -> None:
    import redis
    from django.conf import settings

    from vigilus.celery import app

    app.control.purge()
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{settings.REDIS_KEY_PREFIX}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    require_programs()
    os.environ["REDIS_URL"] = REDIS_URL
    os.environ["VIGILUS_REDIS_PREFIX"] = f"vigilus-bench-plans-{os.getpid()}-{secrets.token_hex(4)}"
    throwaway_vigilus()
    data_dir = Path(os.environ["VIGILUS_DATA_DIR"])
    work = Path(tempfile.mkdtemp(prefix="vigilus-plans-bench-"))
    shapes = SHAPES if args.shape == "both" else (args.shape,)
    from tests.fakes.llm import FakeLLMServer
    from tests.infra import sshd
    from vigilus.celery import app

    farm = model = worker = None
    rows = [Row(shape, mode) for shape in shapes for mode in MODES]
    try:
        app.control.purge()
        log(f"starting {HOSTS} sshd")
        work.chmod(0o755)  # sshd reads the shared authorized_keys as the logged-in user
        farm = start_hosts(work)
        names = add_inventory(farm)
        model = FakeLLMServer([]).start()
        operator, person = make_operator(model.url)
        worker = start_worker(data_dir)
        lab = {
            "operator": operator,
            "person": person,
            "model": model,
            "farm": farm,
            "names": names,
            "eager": args.eager,
        }
        for row in rows:
            log(f"warm-up: {row.shape}, {row.mode}")
            one_run(row.shape, row.mode, **lab)
        for i in range(args.repetitions):
            for row in rows:
                row.samples.append(one_run(row.shape, row.mode, **lab))
                last = row.samples[-1]
                log(
                    f"{i + 1}/{args.repetitions} {row.shape}, {row.mode}: {last.wall:.2f} s, {last.decisions} decisions"
                )
    except SystemExit:
        log(f"worker log (tail):\n{worker_log_tail(data_dir)}")
        raise
    finally:
        if worker is not None:
            stop_worker(worker)
        if model is not None:
            model.stop()
        from tools.mcp_client import pool

        pool().shutdown()
        if farm is not None:
            sshd.stop_farm(farm)
        clean_redis()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    report(rows, args.repetitions, args.eager)


if __name__ == "__main__":
    main(sys.argv[1:])
