"""Benchmark settings: Vigilus without the providers app (see bench/web_memory.py)."""

from vigilus.settings import *  # noqa: F403

INSTALLED_APPS = [app for app in INSTALLED_APPS if not app.startswith("providers")]  # noqa: F405
