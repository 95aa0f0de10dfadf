"""A Celery worker SIGKILLed mid-step, then restarted under the same name: the run goes on, nothing runs twice.

Each test starts its own worker (not the session `celery_worker`) under a fixed node name, kills its whole
process group while a step is in flight, and starts it again under that name. `resume_runs` (worker_ready)
must then void the dead incarnation's lease and re-enqueue the run.

The worker and this process talk over their own Redis database (CRASH_REDIS_DB), so a session worker started
by other test modules cannot pick up (or be blamed for) these runs; the database file is the shared test one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.core.management import call_command

from audit.models import AuditEntry
from operators.choices import CallStatus, RunStatus
from operators.models import Run, Step, ToolCall
from operators.services import submit_task
from tests.conftest import ROOT, VENV_BIN, process_env, wait_for
from tests.fakes.llm import slow, text, tool_call

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
CRASH_REDIS_DB = 13  # this module's broker database on the test Redis server


def crash_redis_url() -> str:
    parts = urlsplit(settings.REDIS_URL)
    if parts.scheme not in ("redis", "rediss"):
        pytest.skip(f"needs a TCP Redis to give the crash worker its own database, not {parts.scheme}")
    return urlunsplit(parts._replace(path=f"/{CRASH_REDIS_DB}"))


class Worker:
    """One Celery worker process (its own session) under a fixed node name, on the crash broker."""

    def __init__(self, name: str, broker: Celery, log: Path, concurrency: int = 1) -> None:
        self.name, self.broker, self.log, self.concurrency = name, broker, log, concurrency
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the worker is already running"
        self.starts += 1
        with open(self.log, "ab") as out:
            out.write(f"\n===== start {self.starts} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [
                    str(VENV_BIN / "celery"),
                    "--app",
                    "vigilus",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    str(self.concurrency),
                    "--hostname",
                    self.name,
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=ROOT,
                env=process_env(REDIS_URL=self.broker.conf.broker_url),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = self.proc
        wait_for(
            lambda: proc.poll() is not None or bool(self.broker.control.ping(destination=[self.name], timeout=0.3)),
            timeout=30,
            interval=0.1,
            what=f"worker {self.name} to answer a ping",
        )
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (parent and pool child) and reap it."""
        assert self.proc is not None and self.proc.poll() is None, "the worker is not running"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the pool child is gone too before we go on
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError("the worker's process group outlived SIGKILL")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def crash_broker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Celery]:
    """The project's Celery configuration on the crash broker, emptied; runs submitted here are enqueued on it."""
    from operators.tasks import advance_run

    url = crash_redis_url()
    client = redis.Redis.from_url(url)
    client.flushdb()
    broker = Celery("vigilus-crash-test", set_as_current=False)  # shared tasks elsewhere keep the real app
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    broker.conf.CELERY_BROKER_URL = url  # the namespaced key: Celery 5.6 reads it before a plain broker_url
    monkeypatch.setattr(advance_run, "delay", lambda run_id: broker.send_task(advance_run.name, args=(run_id,)))
    try:
        yield broker
    finally:
        broker.close()
        client.flushdb()  # the killed incarnation's unacked message must not surface in a later session
        client.close()


@pytest.fixture
def worker(crash_broker: Celery, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(f"crash-{uuid.uuid4().hex[:8]}@localhost", crash_broker, tmp_path / "worker.log")
    try:
        yield w
    finally:
        w.stop()


def settle(run: Run, timeout: float = 30) -> Run:
    """The run finished and its last step let go of the lease (a moment after the status is saved)."""

    def done() -> bool:
        now = Run.objects.get(pk=run.pk)
        return now.finished and now.lease_owner == ""

    wait_for(done, timeout=timeout, interval=0.1, what=f"run #{run.pk} to finish and release its lease")
    return Run.objects.get(pk=run.pk)


def audit_snapshot() -> dict[int, tuple[str, str]]:
    rows = AuditEntry.objects.values_list("sequence", "event", "hash")
    return {seq: (event, digest) for seq, event, digest in rows}


def assert_audit_kept(before: dict[int, tuple[str, str]]) -> None:
    after = audit_snapshot()
    assert {seq: after.get(seq) for seq in before} == before, "audit entries written before the kill changed or went"
    call_command("audit", "verify")  # raises CommandError (exit 1) naming the first bad entry


def reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_kill_during_a_tool_call_never_runs_it_twice(worker: Worker, operator, model, tmp_path: Path) -> None:
    """The command appends its pid to a canary file, then sleeps (exec, so the pid is the sleeper's)."""
    canary = tmp_path / "canary"
    command = f"echo $$ >> {canary} && exec sleep 30"
    model.script(tool_call(SHELL, {"command": command, "timeout": 30}), text("checked after the crash"))
    worker.start()
    run = submit_task("append to the canary", operator=operator())
    try:
        wait_for(
            lambda: canary.exists() and canary.read_text().strip() != "",
            timeout=20,
            interval=0.05,
            what="the command to start",
        )
        call = ToolCall.objects.get(run=run)
        assert call.status == CallStatus.DISPATCHING
        before = audit_snapshot()
        worker.kill()

        dead = Run.objects.get(pk=run.pk)
        assert dead.status == RunStatus.RUNNING and dead.lease_owner.startswith(f"{worker.name}|"), "killed mid-step"
        worker.start()
        run = settle(run)
    finally:
        reap([int(line) for line in canary.read_text().split()] if canary.exists() else [])

    assert run.status in (RunStatus.COMPLETED, RunStatus.FAILED), run.error
    assert run.status == RunStatus.COMPLETED, f"the run should go on after the interruption: {run.error}"
    assert run.answer == "checked after the crash" and run.lease_owner == ""
    assert len(canary.read_text().split()) == 1, "the tool call was executed more than once"
    call.refresh_from_db()
    assert (call.status, call.ok, call.decision) == (CallStatus.DONE, False, "interrupted")
    assert "not run again" in call.result
    entries = list(AuditEntry.objects.filter(run_id=run.pk, tool=SHELL).values_list("event", "decision", "outcome"))
    assert entries.count(("tool_call.decision", "auto_approved", "")) == 1
    outcomes = AuditEntry.objects.filter(run_id=run.pk, tool=SHELL, event="tool_call.outcome")
    (outcome,) = outcomes.values_list("outcome", "error")  # one, saying the outcome is unknown
    assert outcome[0] == "failed" and outcome[1].startswith("interrupted: the worker stopped")
    told = [m["content"] for m in model.chat_requests[-1].body["messages"] if m["role"] == "tool"]
    assert len(told) == 1 and "not run again" in told[0]
    assert len(model.chat_requests) == 2
    assert_audit_kept(before)


def test_kill_during_the_model_call_asks_the_model_again(worker: Worker, operator, model) -> None:
    model.script(slow(30, then=text("too late")), text("asked again"))
    worker.start()
    run = submit_task("what is up?", operator=operator(ceiling="read_only", jit_mode="strict"))
    wait_for(lambda: len(model.chat_requests) == 1, timeout=20, interval=0.05, what="the model call to start")
    before = audit_snapshot()
    worker.kill()

    dead = Run.objects.get(pk=run.pk)
    assert (dead.status, dead.steps) == (RunStatus.RUNNING, 0) and dead.lease_owner.startswith(f"{worker.name}|")
    worker.start()
    run = settle(run)

    assert run.status == RunStatus.COMPLETED, run.error
    assert (run.answer, run.steps, run.lease_owner) == ("asked again", 1, "")
    assert Step.objects.filter(run=run).count() == 1
    first, second = model.chat_requests
    assert second.body["messages"] == first.body["messages"], "the redone step must ask the same question"
    assert_audit_kept(before)


def test_a_run_queued_while_the_worker_was_down_is_stepped_once(worker: Worker, operator, model) -> None:
    """Submitted while no worker runs: its message waits in the queue, and `resume_runs` enqueues it again
    when the worker comes up. With two pool processes both copies arrive at once; the lease must still let
    only one of them step the run (one model call, one step, no failure)."""
    model.script(slow(2, then=text("once")))
    run = submit_task("what is up?", operator=operator(ceiling="read_only", jit_mode="strict"))
    worker.concurrency = 2
    worker.start()
    run = settle(run)
    worker.stop()  # a warm shutdown waits for every task in flight, so a second copy has had its say

    asked = len(model.chat_requests)
    assert asked == 1, f"the model was asked {asked} times for one step: two copies stepped the run at once"
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert (run.answer, run.steps) == ("once", 1)


def test_a_killed_pool_process_leaves_no_run_stuck(crash_broker: Celery, operator, model, tmp_path: Path) -> None:
    """What the OOM killer does: the pool processes die mid-step, the worker's main process lives and redelivers
    the task. The redelivered task takes the run over at once (its lease names the task, not the dead process)."""
    import psutil

    worker = Worker(f"oom-{uuid.uuid4().hex[:8]}@localhost", crash_broker, tmp_path / "worker.log", concurrency=2)
    model.script(slow(30, then=text("too late")), text("asked again"))
    worker.start()
    try:
        run = submit_task("what is up?", operator=operator(ceiling="read_only", jit_mode="strict"))
        wait_for(lambda: len(model.chat_requests) == 1, timeout=20, interval=0.05, what="the model call to start")
        assert worker.proc is not None
        killed = psutil.Process(worker.proc.pid).children()
        for child in killed:
            child.kill()
        assert killed and worker.proc.poll() is None  # the worker's main process lives on
        run = settle(run, timeout=60)  # not the 20 minutes of a lease that names the dead process
    finally:
        worker.stop()
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "asked again"), run.error
    assert Step.objects.filter(run=run).count() == 1
