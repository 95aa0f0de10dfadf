"""What /healthz reports: the database, Redis, and how many Celery workers answer a ping."""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection

logger = logging.getLogger("vigilus.health")

PING_TIMEOUT = 1.0


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("health: database unreachable", exc_info=True)
        return False


def redis_ok() -> bool:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=PING_TIMEOUT, socket_connect_timeout=PING_TIMEOUT
        )
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        logger.warning("health: redis unreachable at the configured REDIS_URL", exc_info=True)
        return False


def live_workers() -> int:
    """The number of Celery workers that answer a broadcast ping within PING_TIMEOUT."""
    from vigilus.celery import app

    try:
        with app.connection_for_write(settings.CELERY_BROKER_URL) as connection:
            return len(app.control.ping(timeout=PING_TIMEOUT, connection=connection) or [])
    except Exception:
        logger.warning("health: cannot ping workers", exc_info=True)
        return 0


def report() -> tuple[bool, dict]:
    """(healthy, body) where body is {"status", "database", "redis", "workers"} and, if not healthy, "down"."""
    database = database_ok()
    redis_up = redis_ok()
    workers = live_workers() if redis_up else 0
    down = [name for name, up in (("database", database), ("redis", redis_up), ("workers", workers > 0)) if not up]
    body: dict = {
        "status": "ok" if not down else "down",
        "database": "ok" if database else "down",
        "redis": "ok" if redis_up else "down",
        "workers": workers,
    }
    if down:
        body["down"] = down
    return not down, body
