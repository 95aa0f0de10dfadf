from __future__ import annotations

from django.apps import AppConfig


class VigilusConfig(AppConfig):
    name = "vigilus"
    verbose_name = "Vigilus"

    def ready(self) -> None:
        from vigilus import logs

        logs.install()  # every log record of every process, libraries' too, leaves redacted
