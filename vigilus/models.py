from __future__ import annotations

from django.db import models

from vigilus.crypto import EncryptedTextField

# Stored encrypted in the settings row; decrypting it at start proves the keys belong to this database.
KEY_CHECK_VALUE = "vigilus-key-check-v1"


class SiteSettings(models.Model):
    """The one row of instance-wide settings (`vigilus.services.site_settings()` loads it).

    Later areas add their global switches here (JIT mode, orchestrator model, notifications).
    """

    instance_name = models.CharField(
        max_length=80, default="Vigilus", help_text="Shown in the page title and in notifications."
    )
    key_check = EncryptedTextField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "settings"
        verbose_name_plural = "settings"
        constraints = [models.CheckConstraint(condition=models.Q(pk=1), name="site_settings_single_row")]

    def __str__(self) -> str:
        return "Settings"
