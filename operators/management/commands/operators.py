"""`manage.py operators add|list|show|remove`: Operators for scripted setup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from operators.choices import Ceiling, OperatorJITMode
from operators.models import Operator
from operators.services import remove_operator, resolve_tools, save_operator
from providers.models import Provider
from vigilus.management.base import AreaCommand


def operator_row(operator: Operator) -> dict[str, Any]:
    return {
        "name": operator.name,
        "description": operator.description,
        "provider": operator.provider.name,
        "model": operator.model or operator.provider.default_model,
        "tools": sorted(t.qualified_name for t in operator.tools.all()),
        "ceiling": operator.ceiling,
        "jit_mode": operator.jit_mode,
        "max_steps": operator.max_steps,
        "token_budget": operator.token_budget,
        "cost_budget": float(operator.cost_budget),
        "plan_first": operator.plan_first,
        "enabled": operator.enabled,
        "system_prompt": operator.system_prompt,
    }


class Command(AreaCommand):
    help = "Manage Operators: LLM sub-agents with a model, tools and a permission ceiling."

    def add_subcommands(self) -> None:
        add = self.subcommand("add", "Add an Operator.")
        add.add_argument("--name", required=True)
        add.add_argument("--provider", required=True)
        add.add_argument("--model", default="", help="default: the provider's default model")
        prompt = add.add_mutually_exclusive_group(required=True)
        prompt.add_argument("--prompt", help="the system prompt")
        prompt.add_argument("--prompt-file", help="read the system prompt from this file")
        add.add_argument("--tools", default="", help="qualified tool names, comma-separated")
        add.add_argument("--ceiling", choices=Ceiling.values, default=Ceiling.READ_ONLY)
        add.add_argument("--jit", choices=OperatorJITMode.values, default=OperatorJITMode.INHERIT)
        add.add_argument("--description", default="", help="what it is for (the orchestrator routes on it)")
        add.add_argument("--max-steps", type=int, default=20)
        add.add_argument(
            "--plan-first",
            action="store_true",
            help="plan mode for every task: other calls than read become a plan a person approves as a whole",
        )
        self.subcommand("list", "List Operators.", json_output=True)
        show = self.subcommand("show", "Show one Operator.", json_output=True)
        show.add_argument("name")
        remove = self.subcommand("remove", "Remove an Operator (its runs and audit entries stay).")
        remove.add_argument("name")

    def _operator(self, name: str) -> Operator:
        operator = Operator.objects.select_related("provider").filter(name=name).first()
        if operator is None:
            raise CommandError(f"No Operator named {name!r} (see `operators list`).")
        return operator

    def handle_add(self, **options: Any) -> None:
        provider = Provider.objects.filter(name=options["provider"]).first()
        if provider is None:
            raise CommandError(f"--provider: no provider named {options['provider']!r} (see `providers list`).")
        prompt = options["prompt"]
        if options["prompt_file"]:
            try:
                prompt = Path(options["prompt_file"]).read_text()
            except OSError as exc:
                raise CommandError(f"--prompt-file: cannot read {options['prompt_file']}: {exc.strerror}") from None
        names = [n.strip() for n in options["tools"].split(",") if n.strip()]
        operator = Operator(
            name=options["name"],
            description=options["description"],
            system_prompt=prompt,
            provider=provider,
            model=options["model"],
            ceiling=options["ceiling"],
            jit_mode=options["jit"],
            max_steps=options["max_steps"],
            plan_first=options["plan_first"],
        )
        if Operator.objects.filter(name=operator.name).exists():
            raise CommandError(f"name: an Operator named {operator.name!r} already exists.")
        save_operator(operator, actor=self.actor(options), tools=resolve_tools(names))
        self.stdout.write(
            f"Added Operator {operator.name} ({operator.get_ceiling_display()}, JIT "
            f"{operator.jit_mode}{', plan first' if operator.plan_first else ''}) with {len(names)} tool(s)."
        )

    def handle_list(self, *, json: bool, **options: Any) -> None:
        rows = [operator_row(o) for o in Operator.objects.select_related("provider").prefetch_related("tools")]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            state = "" if row["enabled"] else " (disabled)"
            self.stdout.write(
                f"{row['name']:<20} {row['provider']}/{row['model']:<24} {row['ceiling']:<10} "
                f"jit={row['jit_mode']:<8} {len(row['tools'])} tools{state}"
            )

    def handle_show(self, *, name: str, json: bool, **options: Any) -> None:
        row = operator_row(self._operator(name))
        if json:
            self.print_json(row)
            return
        for key, value in row.items():
            self.stdout.write(f"{key}: {value}")

    def handle_remove(self, *, name: str, **options: Any) -> None:
        remove_operator(self._operator(name), actor=self.actor(options))
        self.stdout.write(f"Removed Operator {name}.")
