from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def name_the_requested_operators(apps, schema_editor):  # noqa: ANN001, ANN201 - migration signature
    Run = apps.get_model("operators", "Run")
    Operator = apps.get_model("operators", "Operator")
    names = Operator.objects.filter(pk=OuterRef("requested_operator_id")).values("name")[:1]
    Run.objects.filter(requested_operator__isnull=False).update(requested_operator_name=Subquery(names))


class Migration(migrations.Migration):
    dependencies = [
        ("operators", "0004_toolcall_progress"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="requested_operator_name",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(name_the_requested_operators, migrations.RunPython.noop),
    ]
