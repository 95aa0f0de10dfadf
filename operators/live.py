"""A run's transcript pushed live to whoever watches its page (group run.<id>), after commit.

Rendering the whole transcript on every step is most of what a step costs beyond the model and the tool,
and nearly every run is watched by nobody. So the run page's socket counts its watchers (a counter in the
cache, +1 on connect, -1 on disconnect) and sends the transcript as it stands when it connects; a step
renders and sends only while the counter is above zero. A counter left high by a crashed web process only
means some needless pushes.
"""

from __future__ import annotations

from contextlib import suppress

from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string

from vigilus.live import publish_html

WATCHERS_TTL = 24 * 3600  # seconds: a page open longer than a day reconnects and counts again


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def _watchers_key(run_id: int) -> str:
    return f"run-watchers:{run_id}"


def watched(run_id: int) -> bool:
    return (cache.get(_watchers_key(run_id)) or 0) > 0


def add_watcher(run_id: int) -> None:
    key = _watchers_key(run_id)
    cache.add(key, 0, WATCHERS_TTL)
    try:
        if cache.incr(key) < 1:  # left below zero by a lost count: this watcher counts
            cache.set(key, 1, WATCHERS_TTL)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, WATCHERS_TTL)


def remove_watcher(run_id: int) -> None:
    with suppress(ValueError):  # expired: nothing to count down
        cache.decr(_watchers_key(run_id))


def render_transcript(run_id: int) -> str | None:
    """The transcript as an htmx out-of-band fragment, or None when the run is gone."""
    from operators.models import Run

    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return None
    return render_to_string("operators/partials/transcript.html", {"run": run, "oob": True})


def publish_run(run_id: int) -> None:
    def render_and_send() -> None:
        if not watched(run_id):
            return
        html = render_transcript(run_id)
        if html is not None:
            publish_html(run_group(run_id), html)

    transaction.on_commit(render_and_send)
