"""A person's own live notices, on whatever dashboard page they have open: the run they started finished, or waits
for their side to decide (group user.<id>, after commit). Runs from schedules and webhooks have no starter."""

from __future__ import annotations

from django.template.loader import render_to_string

from operators.choices import RunStatus
from operators.models import Run
from vigilus.live import publish_html, user_group

# What the notice says of each status a run's starter hears about.
TOLD = {
    RunStatus.COMPLETED: "completed",
    RunStatus.FAILED: "failed",
    RunStatus.CANCELLED: "was cancelled",
    RunStatus.AWAITING_APPROVAL: "waits for an approval",
    RunStatus.AWAITING_PLAN_APPROVAL: "waits for its plan to be approved",
}


def tell_starter(run: Run) -> None:
    """Tell the person who started `run` that it reached its current status (one they hear about)."""
    if run.started_by_id is None or run.status not in TOLD:
        return
    html = render_to_string("operators/partials/notice.html", {"run": run, "what": TOLD[run.status]})
    publish_html(user_group(run.started_by_id), html)
