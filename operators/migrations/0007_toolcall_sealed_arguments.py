from django.db import migrations

import vigilus.crypto


class Migration(migrations.Migration):
    """A tool call's arguments are kept redacted for showing; the model's own, when redaction changed them, sealed
    (encrypted) for the gateway to run."""

    dependencies = [
        ("operators", "0006_run_started_by"),
    ]

    operations = [
        migrations.AddField(
            model_name="toolcall",
            name="sealed_arguments",
            field=vigilus.crypto.SealedJSONField(blank=True, editable=False, null=True),
        ),
    ]
