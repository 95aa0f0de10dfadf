"""Celery wrappers for the audit log: beat takes a checkpoint every hour, and record() asks for one after every
settings.AUDIT_CHECKPOINT_EVERY entries."""

from __future__ import annotations

from celery import shared_task

from audit import services


@shared_task(name="audit.tasks.take_checkpoint", ignore_result=True)
def take_checkpoint() -> int | None:
    """Sign the log's newest entry and witness it; returns the checkpoint's sequence (None for an empty log)."""
    checkpoint = services.take_checkpoint()
    return checkpoint.sequence if checkpoint else None
