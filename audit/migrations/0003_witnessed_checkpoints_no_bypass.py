"""Checkpoints say whether they were witnessed outside the database; the append-only triggers lose the
session switch that let DELETE/TRUNCATE through.

The triggers are re-installed as audit.triggers defines them now: PostgreSQL's trigger function no longer
reads `vigilus.audit_maintenance` (any session could set it), SQLite's DELETE triggers no longer look for a
TEMP table `audit_maintenance` (any connection could make one). On SQLite, adding the column rebuilds the
checkpoint table, which drops its triggers: installing them again puts those back too.
"""

from django.db import migrations, models


def install_triggers(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [
        migrations.AddField(
            model_name="auditcheckpoint",
            name="witnessed",
            field=models.BooleanField(default=False),
        ),
        # Going back leaves the triggers as they are now (without the switch): nothing needs it back.
        migrations.RunPython(install_triggers, migrations.RunPython.noop, elidable=False),
    ]
