"""`manage.py jit list|approve|deny|revoke|mode`: access requests and grants, for scripted use."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from jit import services
from jit.choices import GrantScope, JITMode
from jit.models import AccessRequest
from vigilus.management.base import AreaCommand


def request_row(item: AccessRequest) -> dict[str, Any]:
    return {
        "id": item.pk,
        "status": item.status,
        "operator": item.operator_name,
        "run": item.run_id,
        "tool": item.tool,
        "intent": item.intent,
        "target": item.target,
        "arguments": item.arguments,
        "reason": item.reason,
        "created_at": item.created_at,
        "expires_at": item.expires_at,
        "decided_by": item.decided_by.username if item.decided_by else None,
        "decision_reason": item.decision_reason,
    }


class Command(AreaCommand):
    help = "List, approve, deny and revoke just-in-time access; switch the global mode."

    def add_subcommands(self) -> None:
        listing = self.subcommand("list", "Pending access requests (--all: every request).", json_output=True)
        listing.add_argument("--all", action="store_true")
        approve = self.subcommand("approve", "Approve a pending request.")
        approve.add_argument("id", type=int)
        approve.add_argument(
            "--scope",
            choices=GrantScope.values,
            default=GrantScope.CALL,
            help="call: this exact call once (default); tool: this tool on this target",
        )
        approve.add_argument("--ttl", type=int, help="minutes the grant lasts (default from Settings)")
        deny = self.subcommand("deny", "Deny a pending request; the Operator is told why.")
        deny.add_argument("id", type=int)
        deny.add_argument("--reason", required=True)
        revoke = self.subcommand("revoke", "Revoke a live grant.")
        revoke.add_argument("id", type=int)
        mode = self.subcommand("mode", "Set the global JIT mode.")
        mode.add_argument("mode", choices=JITMode.values)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            super().handle(*args, **options)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None

    def handle_list(self, *, json: bool, all: bool, **options: Any) -> None:
        services.expire_requests()
        items = AccessRequest.objects.select_related("decided_by")
        items = items if all else items.pending()
        rows = [request_row(i) for i in items]
        if json:
            self.print_json(rows)
            return
        if not rows:
            self.stdout.write("No pending requests.")
        for row in rows:
            self.stdout.write(
                f"#{row['id']:<5} {row['status']:<13} {row['operator'] or '-':<14} {row['tool']} "
                f"({row['intent']}) on {row['target'] or '-'}: {row['reason']}"
            )

    def handle_approve(self, *, id: int, scope: str, ttl: int | None, **options: Any) -> None:
        grant = services.approve(id, actor=self.actor(options), scope=scope, ttl_minutes=ttl)
        self.stdout.write(
            f"Approved request #{id}: grant #{grant.pk} ({grant.get_scope_display()}) "
            f"until {grant.expires_at:%Y-%m-%d %H:%M:%S %Z}."
        )

    def handle_deny(self, *, id: int, reason: str, **options: Any) -> None:
        services.deny(id, actor=self.actor(options), reason=reason)
        self.stdout.write(f"Denied request #{id}.")

    def handle_revoke(self, *, id: int, **options: Any) -> None:
        services.revoke(id, actor=self.actor(options))
        self.stdout.write(f"Revoked grant #{id}.")

    def handle_mode(self, *, mode: str, **options: Any) -> None:
        services.set_global_mode(mode, actor=self.actor(options))
        self.stdout.write(f"Global JIT mode: {mode}.")
