"""A run whose state says there is work to do always gets a worker, whatever happened to its message: the
reconciler (`resume_stalled_runs`, every 30 s) sends one for every such run, and a broker that cannot be reached
when a run is submitted costs a log line, not a traceback or the run."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from celery import Celery
from django.utils import timezone

from jit import services as jit
from jit.models import AccessRequest
from operators.choices import OperatorJITMode, RunStatus
from operators.models import Run
from operators.services import run_json, submit_task
from operators.tasks import advance_run, resume_stalled_runs
from tests.conftest import wait_for
from tests.fakes.llm import text, tool_call
from tests.operators.conftest import RestartableRedis
from tests.operators.test_worker_crash import Worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SHELL = "shell__run_command"
LONG_AGO = timedelta(minutes=5)


def lost(run: Run) -> Run:
    """As if its message was lost a while ago: nothing touched the run since."""
    Run.objects.filter(pk=run.pk).update(updated_at=timezone.now() - LONG_AGO)
    return run


def finished(run: Run, timeout: float = 60) -> Run:
    wait_for(lambda: Run.objects.get(pk=run.pk).finished, timeout=timeout, what=f"run #{run.pk} to finish")
    return Run.objects.get(pk=run.pk)


def test_a_queued_run_whose_message_was_lost_is_sent_again(celery_worker, operator, model, monkeypatch) -> None:
    model.script(text("found it"))
    with monkeypatch.context() as patch:
        patch.setattr(advance_run, "delay", lambda run_id: None)  # lost with Redis's data
        run = submit_task("what is up?", operator=operator())
    time.sleep(1)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert run_json(Run.objects.get(pk=run.pk))["waiting"] == ""  # moments old: its message may be on its way
    assert run.pk not in resume_stalled_runs(), "a run just submitted may still have its message in the queue"
    lost(run)
    waiting = run_json(Run.objects.get(pk=run.pk))["waiting"]
    assert waiting.startswith("waiting for a worker since ") and "Redis reachable" in waiting
    lost(run)
    assert run.pk in resume_stalled_runs()
    run = finished(run)
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "found it")


def test_a_run_held_by_a_live_lease_is_left_to_its_holder(operator) -> None:
    from django.db import transaction

    with transaction.atomic():
        run = submit_task("what is up?", operator=operator())
        Run.objects.filter(pk=run.pk).update(
            lease_owner="alive@host|t", lease_until=timezone.now() + timedelta(minutes=5), updated_at=timezone.now()
        )
    lost(run)
    assert run.pk not in resume_stalled_runs()
    assert Run.objects.get(pk=run.pk).lease_owner == "alive@host|t"


def test_a_parked_run_whose_decision_message_was_lost_goes_on(
    celery_worker, operator, model, admin_user, monkeypatch, tmp_path
) -> None:
    canary = tmp_path / "approved"
    model.script(tool_call(SHELL, {"command": f"touch {canary}"}), text("touched"))
    run = submit_task("make the marker", operator=operator(jit_mode=OperatorJITMode.STRICT))
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, what="the run to park")
    from celery import current_app

    with monkeypatch.context() as patch:
        patch.setattr(current_app, "send_task", lambda *args, **kwargs: None)  # the wake-up is lost
        jit.approve(AccessRequest.objects.get(run_id=run.pk).pk, actor=admin_user)
    time.sleep(1)
    assert Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL and not canary.exists()
    lost(run)
    assert run.pk in resume_stalled_runs()
    run = finished(run)
    assert run.status == RunStatus.COMPLETED and canary.exists()


# --- the broker down -------------------------------------------------------------------------------


def test_a_task_submitted_while_redis_is_down_is_kept_and_runs_once_it_is_back(
    redis_server: RestartableRedis, operator, model, monkeypatch, caplog, tmp_path
) -> None:
    broker = Celery("vigilus-outage-test", set_as_current=False)
    broker.config_from_object("django.conf:settings", namespace="CELERY")
    broker.conf.CELERY_BROKER_URL = redis_server.url  # the namespaced key: Celery 5.6 reads it first
    broker.conf.broker_connection_timeout = 1
    monkeypatch.setattr(advance_run, "delay", lambda run_id: broker.send_task(advance_run.name, args=(run_id,)))
    model.script(text("done after the outage"))
    redis_server.stop()

    with caplog.at_level(logging.WARNING, logger="vigilus.runs"):
        run = submit_task("what is up?", operator=operator())  # no exception: the run is kept
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    (warning,) = [r for r in caplog.records if r.name == "vigilus.runs"]
    assert "message broker (Redis) cannot be reached" in warning.getMessage() and not warning.exc_info

    redis_server.start()
    lost(run)
    # Before any worker starts: a starting worker sends every unheld moving run itself, and may finish this one
    # before the reconciler looks.
    assert run.pk in resume_stalled_runs()
    worker = Worker(f"outage-{uuid.uuid4().hex[:8]}@localhost", broker, tmp_path / "worker.log")
    worker.start()
    try:
        run = finished(run)
    finally:
        worker.stop()
        broker.close()
    assert (run.status, run.answer) == (RunStatus.COMPLETED, "done after the outage")


def test_a_redelivered_copy_takes_over_only_from_a_dead_process_of_the_same_task(operator, monkeypatch) -> None:
    """Redis gives an unacknowledged message back after a restart while its task still runs: that copy must not
    step the run too. The same task redelivered after its process died (the OOM killer) takes over at once."""
    import os

    from operators.agent import take_lease

    with monkeypatch.context() as patch:
        patch.setattr(advance_run, "delay", lambda run_id: None)
        run = submit_task("what is up?", operator=operator())
    dead = subprocess.Popen(["true"])
    dead.wait()
    copy = f"w@host|{os.getpid() + 1}|task-1"  # another pool process, the same task
    for holder, taken in [
        (f"w@host|{os.getpid()}|task-1", False),  # the holder lives: the copy is refused
        (f"w@host|{dead.pid}|task-2", False),  # a dead holder of another task: its lease runs out first
        (f"w@other|{dead.pid}|task-1", False),  # another worker's process: not ours to judge
        (f"w@host|{dead.pid}|task-1", True),  # this very task, its process gone: taken over at once
    ]:
        Run.objects.filter(pk=run.pk).update(lease_owner=holder, lease_until=timezone.now() + timedelta(minutes=20))
        assert take_lease(run.pk, copy) is taken, holder
        assert Run.objects.get(pk=run.pk).lease_owner == (copy if taken else holder)


@pytest.mark.parametrize("parks_on", ["request", "plan"])
def test_a_decision_made_while_its_run_was_being_parked_wakes_the_run(
    operator, model, admin_user, monkeypatch, parks_on: str
) -> None:
    """The decision's wake-up found the run held by the task parking it, and was dropped: that task, once it lets
    go of the run, sends it on itself (without waiting minutes for the reconciler)."""
    from operators import agent, plans, tasks
    from operators.choices import PlanStatus
    from operators.models import Plan, Step, ToolCall

    run = Run.objects.create(task="restart nginx", operator=operator(jit_mode=OperatorJITMode.STRICT))
    step = Step.objects.create(run=run, number=1)
    call = ToolCall.objects.create(run=run, step=step, call_id="c1", tool=SHELL, arguments={"command": "true"})

    def parks_while_a_person_decides(run_id: int, expect: object = None) -> agent.Next:
        if parks_on == "request":
            request = jit.request_access(
                operator=run.operator, run_id=run.pk, tool=SHELL, intent="exec", target="", arguments={}
            )
            ToolCall.objects.filter(pk=call.pk).update(status="awaiting_approval", access_request=request)
            Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL)
            jit.approve(request.pk, actor=admin_user)  # its wake-up finds the run held by this task
        else:
            Plan.objects.create(run=run, status=PlanStatus.AWAITING_APPROVAL, expires_at=timezone.now() + LONG_AGO)
            Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_PLAN_APPROVAL)
            Plan.objects.filter(run=run).update(status=PlanStatus.APPROVED)
        return agent.Next.STOP

    sent: list[int] = []
    monkeypatch.setattr(agent, "step", parks_while_a_person_decides)
    monkeypatch.setattr(tasks, "enqueue_run", sent.append)
    # The decisions' own wake-ups are the ones that were lost: none may reach a worker (it would run the run on).
    monkeypatch.setattr(plans, "_after_decision", lambda plan: None)
    monkeypatch.setattr(jit, "_after_decision", lambda request: None)
    tasks.advance_run.run(run.pk)
    assert sent == [run.pk]

    # Still waiting for the person: parking sends nothing.
    sent.clear()
    if parks_on == "request":
        ToolCall.objects.filter(pk=call.pk).update(
            access_request=jit.request_access(
                operator=run.operator, run_id=run.pk, tool=SHELL, intent="exec", target="", arguments={"x": 1}
            )
        )
    else:
        Plan.objects.filter(run=run).update(status=PlanStatus.AWAITING_APPROVAL)
    monkeypatch.setattr(agent, "step", lambda run_id, expect=None: agent.Next.STOP)
    tasks.advance_run.run(run.pk)
    assert sent == []
