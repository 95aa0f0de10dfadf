"""A run's transcript pushed live to whoever watches its page (group run.<id>), after commit."""

from __future__ import annotations

from django.db import transaction
from django.template.loader import render_to_string

from vigilus.live import publish_html


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def publish_run(run_id: int) -> None:
    def render_and_send() -> None:
        from operators.models import Run

        run = Run.objects.filter(pk=run_id).first()
        if run is None:
            return
        html = render_to_string("operators/partials/transcript.html", {"run": run, "oob": True})
        publish_html(run_group(run_id), html)

    transaction.on_commit(render_and_send)
