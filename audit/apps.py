from __future__ import annotations

from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import signals as auth_signals
        from django.core import checks

        from audit import signals
        from audit.checks import check_settings, check_triggers

        checks.register(check_triggers, checks.Tags.database)
        checks.register(check_settings)
        # Logins happen in Django's auth views and the admin too: its signals are the one place
        # every login passes through.
        auth_signals.user_logged_in.connect(signals.logged_in, dispatch_uid="audit.logged_in")
        auth_signals.user_logged_out.connect(signals.logged_out, dispatch_uid="audit.logged_out")
        auth_signals.user_login_failed.connect(signals.login_failed, dispatch_uid="audit.login_failed")
