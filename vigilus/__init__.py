"""Vigilus: a self-hosted AI operations platform for homelabs."""

from vigilus.celery import app as celery_app

__all__ = ("celery_app",)
