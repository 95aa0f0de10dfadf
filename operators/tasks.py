"""The agent loop on Celery: `advance_run` moves a run step by step and hands it back to the queue."""

from __future__ import annotations

import logging
import time

from celery import shared_task, signals
from kombu.exceptions import OperationalError

from jit.notifications import NotificationFailed
from operators import agent, plans
from operators.choices import PlanStatus
from operators.models import Plan, Run

logger = logging.getLogger("vigilus.runs")

# Seconds one task keeps stepping a run before handing it back to the queue. Steps that follow each other
# quickly (a fast model, read-only tools) then skip a broker round trip each; a slow step (a real model
# answers in seconds) ends the slice at once, so no run holds a worker while others wait.
STEP_SLICE = 0.5


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def advance_run(self: object, run_id: int) -> None:
    """Steps of a run, each stored before the next; safe to repeat (everything it depends on is stored)."""
    # The lease owner names this very task: two deliveries of advance_run for one run (a redelivery, a
    # resume at restart) never step it at once, even in two processes of the same worker.
    owner = agent.lease_owner(getattr(self.request, "hostname", None) or "worker", self.request.id or "")
    if not agent.take_lease(run_id, owner):
        return  # another task holds the run and will continue it
    slice_ends = time.monotonic() + STEP_SLICE
    again = agent.Next.MODEL
    try:
        while True:  # one lease for the whole slice: no lease commits between its steps
            again = agent.step(run_id, expect=again)
            if not again or time.monotonic() >= slice_ends:
                break
    finally:
        agent.release_lease(run_id, owner)  # before the next task is sent, or it would find the run held
    # A decision made while this task held the run (it was parking it) sent its wake-up to a run it found held:
    # that message was dropped, so the run goes on from here.
    if again or agent.decided_while_parking(run_id):
        enqueue_run(run_id)


def enqueue_run(run_id: int) -> bool:
    """Hand the run to a worker. When the broker cannot be reached the run stays as it is stored (queued, or
    between steps) and the reconciler (`resume_stalled_runs`) sends it once the broker is back: False then, and
    one line in the log instead of a traceback."""
    try:
        advance_run.delay(run_id)
    except (OperationalError, OSError) as exc:
        logger.warning(
            "run %s: the message broker (Redis) cannot be reached (%s); the run is kept and goes on once it is back",
            run_id,
            exc,
        )
        return False
    return True


@signals.worker_ready.connect
def resume_runs(sender: object = None, **kwargs: object) -> None:
    """A restarted worker voids its previous incarnation's leases and picks up every run that was moving."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        agent.release_leases_of(hostname)
    agent.release_expired_leases()
    for run_id in Run.objects.filter(status__in=agent.MOVING, lease_owner="").values_list("pk", flat=True):
        enqueue_run(run_id)


@shared_task(ignore_result=True)
def resume_stalled_runs() -> list[int]:
    """Beat's reconciler (every 30 s): every run that needs a worker gets a message, whatever happened to the one
    it had — lost with Redis's data, never sent while the broker was down, or held by a lease whose worker died and
    never came back under its name. Returns the ids sent."""
    run_ids = agent.runs_without_a_worker()
    for run_id in run_ids:
        enqueue_run(run_id)
    return run_ids


@shared_task(ignore_result=True)
def run_schedule(schedule_id: int) -> None:
    """Beat's entry: the schedule's task becomes a run."""
    from operators.entrypoints import run_schedule as submit

    submit(schedule_id)


@shared_task(ignore_result=True)
def expire_plans() -> int:
    """Plans nobody decided in time: rejected as expired, and their runs end."""
    return plans.expire_plans()


@shared_task(
    ignore_result=True, autoretry_for=(NotificationFailed,), retry_backoff=10, retry_backoff_max=300, max_retries=5
)
def notify_plan(plan_id: int) -> None:
    """A plan waiting for a person, announced through the notification URLs; a failure is logged and retried."""
    plan = Plan.objects.select_related("run").filter(pk=plan_id, status=PlanStatus.AWAITING_APPROVAL).first()
    if plan is not None:
        plans.notify(plan)
