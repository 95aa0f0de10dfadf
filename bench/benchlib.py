"""What the benchmarks share: a throwaway Vigilus to measure, quiet console logging, percentiles.

The benchmarks run as scripts (`.venv/bin/python bench/NAME.py`), so this folder is on sys.path and they
import this module as `benchlib`."""

from __future__ import annotations

import logging
import os
import tempfile


def quiet_console_logging() -> None:
    """Console log streams to /dev/null (as if piped to a supervisor): a terminal's speed is not measured."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def throwaway_vigilus() -> None:
    """Django on a throwaway data directory with a migrated SQLite database, console logging silenced."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "vigilus.settings"
    os.environ["VIGILUS_DATA_DIR"] = tempfile.mkdtemp(prefix="vigilus-bench-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    quiet_console_logging()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile, interpolated between the nearest ranks (nan for no values)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)
