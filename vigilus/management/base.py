"""Shared pieces of Vigilus's management commands."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


def validation_message(error: ValidationError) -> str:
    """One line naming each field and what is wrong with it."""
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return " ".join(error.messages)


class AreaCommand(BaseCommand):
    """One command per area with subcommands (`users add ...`, `providers list --json`).

    Subclasses implement `add_subcommands(self)` calling `self.subcommand(...)`, and one
    `handle_<name>(self, **options)` per subcommand (dashes become underscores). Each subcommand
    takes `--as USER`, the person the action is done as (default: the first admin). A
    ValidationError from a service becomes a CommandError naming the field.
    """

    def add_arguments(self, parser: ArgumentParser) -> None:
        self._subparsers = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
        self.add_subcommands()

    def add_subcommands(self) -> None:
        raise NotImplementedError

    def subcommand(self, name: str, help: str, *, json_output: bool = False) -> ArgumentParser:
        parser = self._subparsers.add_parser(name, help=help, description=help)
        parser.add_argument(
            "--as", dest="as_user", metavar="USER", help="the person this action is done as (default: the first admin)"
        )
        if json_output:
            parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, "handle_" + options["subcommand"].replace("-", "_"))
        try:
            handler(**options)
        except ValidationError as exc:
            raise CommandError(validation_message(exc)) from None

    def actor(self, options: dict[str, Any]) -> User:
        from vigilus.services import resolve_actor

        return resolve_actor(options.get("as_user"))

    def print_json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str))
