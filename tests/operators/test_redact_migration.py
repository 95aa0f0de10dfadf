"""Migration operators 0008: runs stored before redaction on the way in are redacted, and a call that has not run
yet keeps the model's own arguments sealed, so it still runs as asked."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps

from operators.choices import CallStatus, RunStatus
from operators.models import Run, Step, ToolCall
from vigilus.redaction import MASK

pytestmark = pytest.mark.django_db

PASSWORD = "Zq-old-run-pw-8841"


def test_runs_stored_before_are_redacted_and_a_pending_call_keeps_its_arguments_sealed() -> None:
    run = Run.objects.create(
        task=f"mysql --password {PASSWORD}",
        status=RunStatus.AWAITING_APPROVAL,
        answer=f"used --password={PASSWORD}",
        messages=[{"role": "user", "content": f"mysql --password {PASSWORD}"}],
    )
    step = Step.objects.create(run=run, number=1, text=f"I will run mysql --password {PASSWORD}")
    command = {"command": f"mysql --password {PASSWORD} -e 'select 1'"}
    done = ToolCall.objects.create(
        run=run,
        step=step,
        call_id="a",
        tool="shell__run_command",
        arguments=command,
        status=CallStatus.DONE,
        result=f"ran with --password {PASSWORD}",
    )
    pending = ToolCall.objects.create(
        run=run,
        step=step,
        position=1,
        call_id="b",
        tool="shell__run_command",
        arguments=command,
        status=CallStatus.AWAITING_APPROVAL,
    )

    import_module("operators.migrations.0008_redact_stored_runs").redact_stored_runs(apps, None)

    run.refresh_from_db()
    assert PASSWORD not in f"{run.task} {run.answer} {run.messages}" and MASK in run.task
    assert Step.objects.get(pk=step.pk).text == f"I will run mysql --password {MASK}"
    done, pending = ToolCall.objects.get(pk=done.pk), ToolCall.objects.get(pk=pending.pk)
    assert PASSWORD not in f"{done.arguments} {done.result} {pending.arguments}"
    assert done.sealed_arguments is None  # it ran: nothing to keep
    assert pending.sealed_arguments == command and pending.dispatch_arguments == command
