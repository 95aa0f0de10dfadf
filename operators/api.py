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

from operators import services
from operators.choices import RunStatus, TaskSource
from operators.management.commands.operators import operator_row
from operators.models import Operator, Run
from vigilus.api import caller_of, require_role
from vigilus.choices import TokenRole

router = Router(tags=["runs"])


class TaskIn(Schema):
    """A task to give. Unknown keys are refused (a misspelt `operator` must not silently route elsewhere)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="What to do, in plain words.")
    operator: str | None = Field(None, description="The Operator to use (default: the orchestrator routes it).")
    plan: bool = Field(False, description="Plans are not available yet: only `false` is accepted.")


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
    awaiting_approval. Needs the submitter role."""
    user = require_role(request, TokenRole.SUBMITTER, "Giving a task")
    if payload.plan:
        raise ValidationError({"plan": "Plans are not available yet: leave `plan` out or send false."})
    operator = _operator_named(payload.operator) if payload.operator else None
    run = services.submit_task(
        payload.task,
        source=TaskSource.API,
        operator=operator,
        started_by=user,
        source_detail=caller_of(request).via,
    )
    return Status(201, services.run_json(run))


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
    run = Run.objects.select_related("started_by").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No run #{run_id}.")
    return services.run_json(run)


@router.get("/operators", response=list[dict[str, Any]], tags=["operators"], summary="List Operators")
def list_operators(request: HttpRequest) -> list[dict[str, Any]]:
    """Every Operator as `operators list --json` prints it."""
    require_role(request, TokenRole.VIEWER, "Reading Operators")
    return [operator_row(o) for o in Operator.objects.select_related("provider").prefetch_related("tools")]
