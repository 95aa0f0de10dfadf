"""Tasks, runs and Operators over the HTTP API (mounted under /api/v1/ by `vigilus.api.build_api`).

A run reads exactly as `runs show --json` prints it (`operators.services.run_json`); an Operator as `operators list
--json` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest
from ninja import Query, Router, Schema, Status
from pydantic import ConfigDict, Field

from operators import plans, services
from operators.choices import PlanStatus, RunStatus, TaskSource
from operators.management.commands.operators import operator_row
from operators.models import Operator, Plan, Run
from vigilus.api import caller_of, require_role
from vigilus.choices import TokenRole

router = Router(tags=["runs"])


class TaskIn(Schema):
    """A task to give. Unknown keys are refused (a misspelt `operator` must not silently route elsewhere)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="What to do, in plain words.")
    operator: str | None = Field(None, description="The Operator to use (default: the orchestrator routes it).")
    plan: bool = Field(
        False, description="Plan first: other calls than read become a plan a person approves as a whole."
    )


class ReplyIn(Schema):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The reply: the run's Operator goes on with the whole conversation.")


class PlanApproveIn(Schema):
    model_config = ConfigDict(extra="forbid")

    skip: list[int] = Field(default_factory=list, description="Step numbers to leave out.")


class PlanRejectIn(Schema):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why; kept with the run.")


class ToolCallOut(Schema):
    model_config = ConfigDict(extra="allow")

    tool: str
    arguments: Any
    intent: str
    decision: str
    status: str
    ok: bool
    access_request: int | None = Field(description="The pending or decided access request, if the call needed one.")
    untrusted: bool


class RunOut(Schema):
    """A run, as `runs show --json` prints it. `waiting` says why an unfinished run is not moving ('' while it
    moves); a run waiting for approval lists the access request in its tool call."""

    model_config = ConfigDict(extra="allow")

    id: int
    status: RunStatus
    operator: str | None
    routing_reason: str
    task: str
    source: str
    started_by: str | None
    answer: str
    error: str
    waiting: str
    steps: int
    tokens: int
    cost: float
    created_at: datetime
    finished_at: datetime | None
    plan_mode: bool
    turns: list[dict[str, Any]] = Field(description="The person's messages in order, each with its answer.")
    plan: dict[str, Any] | None = Field(
        description="The latest plan: {status, summary, steps: [{index, tool, arguments, target, intent, reason, "
        "status, result}]}; null for a run that made none."
    )
    tool_calls: list[ToolCallOut]


class RunFilters(Schema):
    status: RunStatus | None = None
    operator: str | None = Field(None, description="The Operator's name.")
    source: TaskSource | None = None
    limit: int = Field(50, ge=1, le=500, description="The newest this many runs.")


def _operator_named(name: str) -> Operator:
    operator = Operator.objects.filter(name=name).first()
    if operator is None:
        raise ValidationError({"operator": f"No Operator named {name!r} (see GET /api/v1/operators)."})
    if not operator.enabled:
        raise ValidationError({"operator": f"The Operator {name!r} is disabled."})
    return operator


@router.post("/tasks", response={201: RunOut}, summary="Give a task")
def submit_task(request: HttpRequest, payload: TaskIn) -> Status:
    """Queues a run (201 with the run); poll `GET /runs/{id}` until its status is completed, failed or cancelled, or
    awaiting_approval / awaiting_plan_approval. Needs the submitter role."""
    user = require_role(request, TokenRole.SUBMITTER, "Giving a task")
    operator = _operator_named(payload.operator) if payload.operator else None
    run = services.submit_task(
        payload.task,
        source=TaskSource.API,
        operator=operator,
        started_by=user,
        source_detail=caller_of(request).via,
        plan_mode=payload.plan,
    )
    return Status(201, services.run_json(run))


@router.post("/runs/{int:run_id}/replies", response={201: RunOut}, summary="Reply to a finished run")
def reply(request: HttpRequest, run_id: int, payload: ReplyIn) -> Status:
    """A follow-up: the run's Operator goes on with the whole conversation, in the same run (201 with the run). A run
    still working or waiting for a decision takes no reply (400). Needs the submitter role."""
    user = require_role(request, TokenRole.SUBMITTER, "Replying to a run")
    run = services.continue_run(_run(run_id), payload.text, source=TaskSource.API, started_by=user)
    return Status(201, services.run_json(run))


@router.get("/plans", response=list[dict[str, Any]], tags=["plans"], summary="List plans awaiting approval")
def list_plans(request: HttpRequest) -> list[dict[str, Any]]:
    """Plans waiting for a person, each with its run's id: what `plans show RUN_ID --json` prints. Needs the
    approver role, as the Approvals page does."""
    require_role(request, TokenRole.APPROVER, "Reading plans")
    plans.expire_plans()
    pending = Plan.objects.filter(status=PlanStatus.AWAITING_APPROVAL).select_related("decided_by")
    return [{"run": plan.run_id, **plans.plan_json(plan)} for plan in pending.order_by("expires_at")]


@router.post("/runs/{int:run_id}/plan/approve", response=dict[str, Any], tags=["plans"], summary="Approve a plan")
def approve_plan(request: HttpRequest, run_id: int, payload: PlanApproveIn | None = None) -> dict[str, Any]:
    """Approve the run's plan as a whole, leaving out the steps in `skip`; the steps then run in order. 409 when it
    was decided or expired meanwhile; 403 under the four-eyes rule for the person who started the run."""
    user = require_role(request, TokenRole.APPROVER, "Approving a plan")
    _run(run_id)
    return plans.plan_json(plans.approve(run_id, actor=user, skip=(payload or PlanApproveIn()).skip))


@router.post("/runs/{int:run_id}/plan/reject", response=dict[str, Any], tags=["plans"], summary="Reject a plan")
def reject_plan(request: HttpRequest, run_id: int, payload: PlanRejectIn) -> dict[str, Any]:
    """Reject the run's plan: nothing in it runs, and the run ends."""
    user = require_role(request, TokenRole.APPROVER, "Rejecting a plan")
    _run(run_id)
    return plans.plan_json(plans.reject(run_id, actor=user, reason=payload.reason))


def _run(run_id: int) -> Run:
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No run #{run_id}.")
    return run


@router.get("/runs", response=list[RunOut], summary="List runs")
def list_runs(request: HttpRequest, filters: Query[RunFilters]) -> list[dict[str, Any]]:
    """The newest runs first, filtered by status, Operator and source."""
    require_role(request, TokenRole.VIEWER, "Reading runs")
    runs = Run.objects.select_related("started_by").prefetch_related("tool_calls")
    if filters.status:
        runs = runs.filter(status=filters.status)
    if filters.operator:
        runs = runs.filter(operator_name=filters.operator)
    if filters.source:
        runs = runs.filter(source=filters.source)
    return [services.run_json(run) for run in runs.order_by("-created_at", "-pk")[: filters.limit]]


@router.get("/runs/{int:run_id}", response=RunOut, summary="Get a run")
def get_run(request: HttpRequest, run_id: int) -> dict[str, Any]:
    """One run with its tool calls: the JSON of `runs show --json`."""
    require_role(request, TokenRole.VIEWER, "Reading runs")
    return services.run_json(_run(run_id))


@router.get("/operators", response=list[dict[str, Any]], tags=["operators"], summary="List Operators")
def list_operators(request: HttpRequest) -> list[dict[str, Any]]:
    """Every Operator as `operators list --json` prints it."""
    require_role(request, TokenRole.VIEWER, "Reading Operators")
    return [operator_row(o) for o in Operator.objects.select_related("provider").prefetch_related("tools")]
