"""Discovery on a worker: at every worker start, and when the dashboard's Refresh asks for it."""

from __future__ import annotations

from celery import shared_task, signals

from tools.services import discover_all


@shared_task(ignore_result=True)
def discover_tools() -> None:
    discover_all()


@signals.worker_ready.connect
def discover_at_worker_start(sender: object = None, **kwargs: object) -> None:
    """Install an MCP server, restart Vigilus: its tools appear. Runs in a worker child, after the fork."""
    discover_tools.delay()
