"""Discovery on a worker: at every worker start, and when the dashboard's Refresh asks for it."""

from __future__ import annotations

from celery import shared_task, signals

from tools.services import discover_all


@shared_task(ignore_result=True)
def discover_tools() -> None:
    """Sync mcp.json and the built-in servers, then discover every server's tools (what is wrong is stored on
    each server, for the servers page and `manage.py mcp list`)."""
    discover_all()


@signals.worker_ready.connect
def discover_at_worker_start(sender: object = None, **kwargs: object) -> None:
    """Install an MCP server, restart Vigilus: its tools appear.

    The signal fires in the worker's main process, which only queues the discovery: a pool process runs it, so
    the MCP sessions it opens live where tool calls run, never in the parent that forks them."""
    discover_tools.delay()
