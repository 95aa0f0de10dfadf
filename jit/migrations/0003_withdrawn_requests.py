from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jit", "0002_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="accessrequest",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("approved", "Approved"),
                    ("auto_approved", "Auto-approved"),
                    ("denied", "Denied"),
                    ("expired", "Expired"),
                    ("withdrawn", "Withdrawn"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
    ]
