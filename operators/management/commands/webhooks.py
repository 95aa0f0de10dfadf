"""`manage.py webhooks add|list|pause|resume|remove`: inbound alerts that become tasks."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.urls import reverse

from operators.entrypoints import add_webhook, remove_webhook
from operators.management.base import EntryPointCommand
from operators.models import Operator, Webhook


class Command(EntryPointCommand):
    model = Webhook
    help = "Webhooks: a URL and a token; each JSON alert posted there becomes a task for the Operator."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Add a webhook; its URL and token are printed once.")
        add.add_argument("--name", required=True)
        add.add_argument("--operator", required=True)
        add.add_argument("--instructions", default="", help="what the Operator should do with each alert")
        self.subcommand("list", "List webhooks.", json_output=True)
        self.add_pause_and_resume("kept, answering 403")
        remove = self.subcommand("remove", "Remove a webhook.")
        remove.add_argument("name")

    def handle_add(self, *, name: str, operator: str, instructions: str, **options: Any) -> None:
        op = Operator.objects.filter(name=operator).first()
        if op is None:
            raise CommandError(f"--operator: no Operator named {operator!r}.")
        webhook, token = add_webhook(name=name, operator=op, instructions=instructions, actor=self.actor(options))
        url = settings.PUBLIC_URL.rstrip("/") + reverse("webhook-receive", args=[webhook.name])
        self.stdout.write(f"URL:   {url}")
        self.stdout.write(f"Token (shown once; send it as `Authorization: Bearer TOKEN`): {token}")

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [
            {"name": w.name, "operator": w.operator.name, "enabled": w.enabled, "last_received_at": w.last_received_at}
            for w in Webhook.objects.select_related("operator")
        ]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            self.stdout.write(
                f"{row['name']:<20} {row['operator']:<16} last alert: {row['last_received_at'] or 'never'}"
            )

    def handle_remove(self, *, name: str, **options: Any) -> None:
        remove_webhook(self.named(name), actor=self.actor(options))
        self.stdout.write(f"Removed webhook {name}.")
