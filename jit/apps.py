from __future__ import annotations

from django.apps import AppConfig


class JITConfig(AppConfig):
    name = "jit"
    verbose_name = "JIT"
