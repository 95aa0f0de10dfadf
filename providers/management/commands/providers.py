"""`manage.py providers add|list|test|test-tools|models|remove`: model providers for scripted setup.

API keys are never flags: `--api-key-env VAR` or `--api-key-stdin`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from providers.choices import ProviderKind
from providers.discovery import list_models
from providers.errors import ProviderError
from providers.forms import parse_context_windows
from providers.models import Provider
from providers.services import create_provider, remove_provider, run_connection_test, run_tool_calling_check
from vigilus.management.base import AreaCommand


def provider_row(provider: Provider) -> dict[str, Any]:
    return {
        "name": provider.name,
        "kind": provider.kind,
        "endpoint": provider.endpoint,
        "default_model": provider.default_model,
        "context_windows": provider.context_windows,
        "enabled": provider.enabled,
        "api_key": "set" if provider.has_api_key else "not set",
        "last_test": provider.last_test_status,
        "last_test_message": provider.last_test_message,
        "last_tested_at": provider.last_tested_at,
        "tool_calling": provider.tools_check_status,
    }


class Command(AreaCommand):
    help = "Manage model providers (Anthropic, OpenAI, Gemini, Ollama, LM Studio, vLLM, OpenRouter, xAI, compatible)."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Add a provider. Nothing is sent to the endpoint until `test` or `models`.")
        add.add_argument("--name", required=True)
        add.add_argument("--kind", required=True, help=", ".join(ProviderKind.values))
        add.add_argument("--base-url", default="", help="endpoint URL (default: the kind's)")
        key = add.add_mutually_exclusive_group()
        key.add_argument("--api-key-env", metavar="VAR", help="read the API key from this environment variable")
        key.add_argument("--api-key-stdin", action="store_true", help="read the API key from standard input")
        add.add_argument("--default-model", default="")
        add.add_argument(
            "--context-window",
            action="append",
            default=[],
            metavar="MODEL=TOKENS",
            help="tokens the model can take in, where the server does not say (repeatable; default 8192 for local "
            "servers)",
        )
        add.add_argument("--disabled", action="store_true", help="add it switched off")
        self.subcommand("list", "List providers (API keys are never shown).", json_output=True)
        for name, text in (
            ("test", "Send one tiny completion and report whether the endpoint answers."),
            ("test-tools", "Check whether the model returns a well-formed tool call."),
        ):
            parser = self.subcommand(name, text, json_output=True)
            parser.add_argument("name")
            parser.add_argument("--model", help="model to use (default: the provider's default model)")
            parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
        models = self.subcommand("models", "List the models the endpoint offers.", json_output=True)
        models.add_argument("name")
        remove = self.subcommand("remove", "Remove a provider.")
        remove.add_argument("name")

    def _provider(self, name: str) -> Provider:
        provider = Provider.objects.filter(name=name).first()
        if provider is None:
            raise CommandError(f"No provider named {name!r} (see `providers list`).")
        return provider

    def _api_key(self, options: dict[str, Any]) -> str:
        if options["api_key_env"]:
            value = os.environ.get(options["api_key_env"], "")
            if not value:
                raise CommandError(
                    f"--api-key-env: the environment variable {options['api_key_env']} is not set or empty."
                )
            return value
        if options["api_key_stdin"]:
            value = sys.stdin.readline().strip()
            if not value:
                raise CommandError("--api-key-stdin: nothing was read from standard input.")
            return value
        return ""

    def _context_windows(self, entries: list[str]) -> dict[str, int]:
        try:
            return parse_context_windows("\n".join(entries))
        except ValidationError as exc:
            raise CommandError(f"--context-window: {' '.join(exc.messages)}") from None

    def handle_add(self, **options: Any) -> None:
        provider = create_provider(
            actor=self.actor(options),
            name=options["name"],
            kind=options["kind"],
            base_url=options["base_url"],
            api_key=self._api_key(options),
            default_model=options["default_model"],
            context_windows=self._context_windows(options["context_window"]),
            enabled=not options["disabled"],
        )
        self.stdout.write(f"Added provider {provider.name} ({provider.get_kind_display()}) at {provider.endpoint}.")

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [provider_row(p) for p in Provider.objects.all()]
        if json:
            self.print_json(rows)
            return
        if not rows:
            self.stdout.write("No providers yet: `providers add --name N --kind K ...`.")
        for row in rows:
            state = "" if row["enabled"] else " (disabled)"
            self.stdout.write(
                f"{row['name']:<20} {row['kind']:<18} {row['endpoint']:<40} "
                f"model={row['default_model'] or '-'} test={row['last_test']}{state}"
            )

    def _check(self, check: Any, options: dict[str, Any]) -> None:
        provider = self._provider(options["name"])
        result = check(provider, model=options["model"], timeout=options["timeout"])
        if options["json"]:
            self.print_json({"name": provider.name, "ok": result.ok, "model": result.model, "message": result.message})
        if not result.ok:
            raise CommandError(f"{provider.name}: {result.message}")
        if not options["json"]:
            self.stdout.write(f"{provider.name}: OK, {result.message}")

    def handle_test(self, **options: Any) -> None:
        self._check(run_connection_test, options)

    def handle_test_tools(self, **options: Any) -> None:
        self._check(run_tool_calling_check, options)

    def handle_models(self, *, name: str, json: bool, **options: Any) -> None:
        provider = self._provider(name)
        try:
            names = list_models(provider)
        except ProviderError as exc:
            raise CommandError(f"{provider.name}: {exc.label}: {exc}") from None
        if json:
            self.print_json(names)
        else:
            self.stdout.write("\n".join(names) if names else f"{provider.name} offers no models.")

    def handle_remove(self, *, name: str, **options: Any) -> None:
        remove_provider(self._provider(name), actor=self.actor(options))
        self.stdout.write(f"Removed provider {name}.")
