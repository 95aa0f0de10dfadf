from django.db import migrations


class Migration(migrations.Migration):
    """The person who gave a run's task was already kept (as created_by); the four-eyes rule asks who *started*
    the run, so the field says so. A rename keeps who started the runs made so far."""

    dependencies = [
        ("operators", "0005_run_requested_operator_name"),
    ]

    operations = [
        migrations.RenameField(model_name="run", old_name="created_by", new_name="started_by"),
    ]
