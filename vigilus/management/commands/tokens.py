"""`vigilus tokens add|list|revoke`: personal access tokens for the HTTP API under /api/v1/."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandError

from vigilus.choices import TokenRole
from vigilus.management.base import AreaCommand
from vigilus.models import ApiToken
from vigilus.services import create_token, revoke_token, token_role


def token_row(token: ApiToken) -> dict[str, Any]:
    """A token as scripts see it; never the token itself (only its hash is stored)."""
    effective = token_role(token)
    return {
        "id": token.pk,
        "name": token.name,
        "user": token.user.username,
        "role": token.role,
        "effective_role": effective.value if effective else None,
        "state": token.state,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
    }


class Command(AreaCommand):
    help = "Manage personal access tokens for the HTTP API (/api/v1/); a token never does more than its person may."

    def add_subcommands(self) -> None:
        add = self.subcommand(
            "add",
            "Make a token for the person named by --as; it is printed once (only its hash is kept).",
            json_output=True,
        )
        add.add_argument("name", help="what the token is for (`ci`, `home-assistant`)")
        add.add_argument(
            "--role",
            required=True,
            choices=TokenRole.values,
            help="viewer: read; submitter: also give tasks; approver: also decide access requests",
        )
        add.add_argument("--expires", type=int, metavar="DAYS", help="days until it stops working (default: never)")
        self.subcommand("list", "List tokens (with --as: that person's only).", json_output=True)
        revoke = self.subcommand("revoke", "Revoke the live token NAME of the person named by --as.")
        revoke.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            super().handle(*args, **options)
        except PermissionDenied as exc:
            raise CommandError(str(exc)) from None

    def _owner(self, options: dict[str, Any]) -> User:
        """The person named by --as: a token belongs to someone, so no first-admin default here."""
        if not options.get("as_user"):
            raise CommandError("--as: name the person the token belongs to (`--as USER`).")
        return self.actor(options)

    def handle_add(self, *, name: str, role: str, expires: int | None, json: bool, **options: Any) -> None:
        owner = self._owner(options)
        token, clear = create_token(owner, name=name, role=role, expires_days=expires, actor=owner)
        row = token_row(token)
        if json:
            self.print_json({**row, "token": clear})
            return
        until = f"until {token.expires_at:%Y-%m-%d}" if token.expires_at else "with no expiry"
        self.stdout.write(f"Created token {token.name!r} of {owner.username} ({role}, {until}).")
        if row["effective_role"] != role:
            self.stdout.write(
                f"It acts as {row['effective_role'] or 'nothing'} while {owner.username}'s role is lower."
            )
        self.stdout.write(f"Token (shown once): {clear}")

    def handle_list(self, *, json: bool, **options: Any) -> None:
        tokens = ApiToken.objects.select_related("user").prefetch_related("user__groups")
        if options.get("as_user"):
            tokens = tokens.filter(user=self.actor(options))
        rows = [token_row(t) for t in tokens]
        if json:
            self.print_json(rows)
            return
        if not rows:
            self.stdout.write("No API tokens: `tokens add NAME --role viewer --as USER`.")
        for row in rows:
            used = f"{row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "never"
            self.stdout.write(
                f"{row['user']:<16} {row['name']:<24} {row['role']:<10} {row['state']:<8} last used {used}"
            )

    def handle_revoke(self, *, name: str, **options: Any) -> None:
        owner = self._owner(options)
        token = ApiToken.objects.filter(user=owner, name=name, revoked_at__isnull=True).first()
        if token is None:
            raise CommandError(f"{owner.username} has no live token named {name!r} (see `tokens list`).")
        revoke_token(token, actor=owner)
        self.stdout.write(f"Revoked token {name!r} of {owner.username}.")
