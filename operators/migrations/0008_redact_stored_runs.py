"""Runs stored before tool arguments, answers and tasks were redacted on the way in are redacted now, by the same
rules: credential shapes and token formats, and the value of every secret stored so far. A call not done yet keeps
the model's own arguments sealed, so it still runs as asked."""

from django.db import DatabaseError, migrations, transaction

from vigilus.redaction import load_known_secrets, redact, redact_data

BATCH = 500


def learn_stored_secrets():
    """Every stored secret, read with today's models; in a database an app's later migration has yet to bring up
    to date (a column missing) the shapes still apply."""
    try:
        with transaction.atomic():
            load_known_secrets()
    except DatabaseError:
        pass


def redact_stored_runs(apps, schema_editor):
    learn_stored_secrets()
    Run = apps.get_model("operators", "Run")
    Step = apps.get_model("operators", "Step")
    ToolCall = apps.get_model("operators", "ToolCall")
    for run in Run.objects.only("task", "answer", "error", "messages").iterator(chunk_size=BATCH):
        shown = {
            "task": redact(run.task),
            "answer": redact(run.answer),
            "error": redact(run.error),
            "messages": redact_data(run.messages),
        }
        if any(getattr(run, name) != value for name, value in shown.items()):
            Run.objects.filter(pk=run.pk).update(**shown)
    for step in Step.objects.only("text").iterator(chunk_size=BATCH):
        if (text := redact(step.text)) != step.text:
            Step.objects.filter(pk=step.pk).update(text=text)
    for call in ToolCall.objects.only("arguments", "arguments_error", "result", "status").iterator(chunk_size=BATCH):
        shown = {
            "arguments": redact_data(call.arguments),
            "arguments_error": redact(call.arguments_error),
            "result": redact(call.result),
        }
        if any(getattr(call, name) != value for name, value in shown.items()):
            sealed = call.arguments if call.status != "done" and shown["arguments"] != call.arguments else None
            ToolCall.objects.filter(pk=call.pk).update(sealed_arguments=sealed, **shown)


class Migration(migrations.Migration):
    dependencies = [
        ("operators", "0007_toolcall_sealed_arguments"),
    ]

    operations = [
        migrations.RunPython(redact_stored_runs, migrations.RunPython.noop, elidable=True),
    ]
