"""`vigilus users add|list|set-role|set-password|deactivate|link-sso|unlink-sso`: the people who use Vigilus, their
roles, and the identities at the single sign-on provider they are."""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import CommandError

from vigilus.choices import Role
from vigilus.management.base import AreaCommand
from vigilus.oidc import config as sso_config
from vigilus.oidc.services import link_identity, unlink_identities
from vigilus.services import create_user, deactivate_user, role_of, set_password, set_role


class Command(AreaCommand):
    help = "Manage Vigilus users and their roles (admin, approver, viewer)."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Create a user. Without --password-env a password is generated and printed once.")
        add.add_argument("username")
        add.add_argument("--role", required=True, choices=Role.values)
        add.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
        self.subcommand("list", "List users and their roles.", json_output=True)
        set_role_parser = self.subcommand("set-role", "Change a user's role.")
        set_role_parser.add_argument("username")
        set_role_parser.add_argument("--role", required=True, choices=Role.values)
        set_password_parser = self.subcommand(
            "set-password",
            "Give a user a new password (recovery: also when logins go through single sign-on). Without "
            "--password-env one is generated and printed once.",
        )
        set_password_parser.add_argument("username")
        set_password_parser.add_argument(
            "--password-env", metavar="VAR", help="read the password from this environment variable"
        )
        deactivate = self.subcommand("deactivate", "Stop a user from logging in (their audit history stays).")
        deactivate.add_argument("username")
        link = self.subcommand(
            "link-sso",
            "Make signing in as an identity at the single sign-on provider (its `sub`) sign in as this user.",
        )
        link.add_argument("username")
        link.add_argument("--subject", required=True, metavar="SUB", help="the provider's `sub` for this person")
        link.add_argument("--issuer", help="the provider's issuer URL (default: VIGILUS_OIDC_ISSUER)")
        unlink = self.subcommand(
            "unlink-sso", "Stop an identity at the single sign-on provider signing in as this user."
        )
        unlink.add_argument("username")

    def _user(self, username: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        return user

    def _actor(self, options: dict[str, Any]) -> Any:
        """Who the audit log names: --as when given, else "system" (these commands also recover a Vigilus whose
        admins cannot log in any more, so they never require one)."""
        return self.actor(options) if options.get("as_user") else "system"

    @staticmethod
    def _password_from(password_env: str | None) -> str | None:
        if not password_env:
            return None
        password = os.environ.get(password_env)
        if not password:
            raise CommandError(f"--password-env: the environment variable {password_env} is not set or empty.")
        return password

    def handle_add(self, *, username: str, role: str, password_env: str | None, **options: Any) -> None:
        password = self._password_from(password_env)
        user, generated = create_user(username, role=role, password=password, actor=self._actor(options))
        self.stdout.write(f"Created {role} {user.username!r}.")
        if generated:
            self.stdout.write(f"Password (shown once): {generated}")

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [
            {
                "username": user.username,
                "role": (role_of(user) or ""),
                "active": user.is_active,
                "last_login": user.last_login.isoformat() if user.last_login else None,
                "sso_subject": next((identity.subject for identity in user.sso_identities.all()), None),
            }
            for user in User.objects.order_by("username").prefetch_related("groups", "sso_identities")
        ]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            state = "" if row["active"] else " (deactivated)"
            linked = f"  single sign-on: {row['sso_subject']}" if row["sso_subject"] else ""
            self.stdout.write(f"{row['username']:<24} {row['role'] or '-':<10}{state}{linked}")

    def handle_set_role(self, *, username: str, role: str, **options: Any) -> None:
        set_role(self._user(username), role, actor=self._actor(options))
        self.stdout.write(f"{username!r} is now {role}.")

    def handle_set_password(self, *, username: str, password_env: str | None, **options: Any) -> None:
        user, password = self._user(username), self._password_from(password_env)
        generated = set_password(user, actor=self._actor(options), password=password)
        self.stdout.write(f"{username!r} has a new password; their other sessions have ended.")
        if generated:
            self.stdout.write(f"Password (shown once): {generated}")

    def handle_deactivate(self, *, username: str, **options: Any) -> None:
        deactivate_user(self._user(username), actor=self._actor(options))
        self.stdout.write(f"{username!r} can no longer log in.")

    def handle_link_sso(self, *, username: str, subject: str, issuer: str | None, **options: Any) -> None:
        sso = sso_config.current()
        issuer = issuer or (sso.issuer if sso else "")
        if not issuer:
            raise CommandError("Single sign-on is not configured (VIGILUS_OIDC_ISSUER): give --issuer.")
        identity, created = link_identity(
            self._user(username), subject=subject, issuer=issuer, actor=self._actor(options)
        )
        if created:
            self.stdout.write(f"Signing in as {identity.subject!r} at {identity.issuer} now signs in {username!r}.")
        else:
            self.stdout.write(f"{username!r} was already linked to {identity.subject!r} at {identity.issuer}.")

    def handle_unlink_sso(self, *, username: str, **options: Any) -> None:
        for identity in unlink_identities(self._user(username), actor=self._actor(options)):
            self.stdout.write(f"{username!r} is no longer linked to {identity.subject!r} at {identity.issuer}.")
