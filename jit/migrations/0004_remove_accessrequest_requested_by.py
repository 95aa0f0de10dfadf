from django.db import migrations


class Migration(migrations.Migration):
    """Nothing ever filled requested_by (runs are started by people, requests are raised by Operators): the
    four-eyes rule asks who started the request's run (operators.Run.started_by) instead."""

    dependencies = [
        ("jit", "0003_withdrawn_requests"),
    ]

    operations = [
        migrations.RemoveField(model_name="accessrequest", name="requested_by"),
    ]
