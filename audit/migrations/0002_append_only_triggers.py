"""Database triggers that refuse UPDATE and DELETE (and TRUNCATE) on the audit tables.

A later migration that rebuilds an audit table (SQLite rebuilds a table for many ALTERs, dropping its
triggers) must end with the same RunPython(install_triggers, ...): the audit.E001 system check fails
until it does.
"""

from django.db import migrations


def install_triggers(apps, schema_editor):
    from audit import triggers

    triggers.install(schema_editor.connection)


def uninstall_triggers(apps, schema_editor):
    from audit import triggers

    triggers.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install_triggers, uninstall_triggers, elidable=False)]
