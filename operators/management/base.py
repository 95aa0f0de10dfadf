"""What `manage.py schedules` and `manage.py webhooks` share: their entry points are paused, resumed and removed by
name."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from operators.entrypoints import set_enabled
from operators.models import Schedule, Webhook
from vigilus.management.base import AreaCommand


class EntryPointCommand(AreaCommand):
    """An AreaCommand over `model` (Schedule or Webhook) with `pause NAME` and `resume NAME`."""

    model: type[Schedule] | type[Webhook]

    def add_pause_and_resume(self, paused: str) -> None:
        """`paused`: what a paused one does, for the help text."""
        noun = self.model._meta.verbose_name
        self.subcommand("pause", f"Pause a {noun} ({paused} until resumed).").add_argument("name")
        self.subcommand("resume", f"Resume a paused {noun}.").add_argument("name")

    def named(self, name: str) -> Schedule | Webhook:
        entry_point = self.model.objects.filter(name=name).first()
        if entry_point is None:
            raise CommandError(f"No {self.model._meta.verbose_name} named {name!r}.")
        return entry_point

    def handle_pause(self, *, name: str, **options: Any) -> None:
        set_enabled(self.named(name), False, actor=self.actor(options))
        self.stdout.write(f"Paused {self.model._meta.verbose_name} {name}.")

    def handle_resume(self, *, name: str, **options: Any) -> None:
        set_enabled(self.named(name), True, actor=self.actor(options))
        self.stdout.write(f"Resumed {self.model._meta.verbose_name} {name}.")
