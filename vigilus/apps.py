from __future__ import annotations

from django.apps import AppConfig


class VigilusConfig(AppConfig):
    name = "vigilus"
    verbose_name = "Vigilus"
