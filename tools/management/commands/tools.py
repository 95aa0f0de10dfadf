"""`manage.py tools list|set-intent|review`: the tool catalogue."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from tools.choices import Intent
from tools.intent import COMMAND_LINE_TOOLS, base_intent
from tools.models import Tool
from tools.services import review_tool, set_tool_intent
from vigilus.management.base import AreaCommand


def tool_row(tool: Tool) -> dict[str, Any]:
    intent, why = base_intent(tool)
    return {
        "qualified_name": tool.qualified_name,
        "server": tool.server.name,
        "name": tool.name,
        "intent": intent.value,
        "intent_reason": why,
        "classified_per_call": tool.qualified_name in COMMAND_LINE_TOOLS,
        "review_state": tool.review_state,
        "available": tool.available,
        "description": tool.description,
    }


class Command(AreaCommand):
    help = "List tools, set a tool's intent, or review a new or changed tool."

    def add_subcommands(self) -> None:
        listing = self.subcommand("list", "List every discovered tool.", json_output=True)
        listing.add_argument("--server", help="only this server's tools")
        set_intent = self.subcommand("set-intent", "Set a tool's intent (or `derived` to use its annotations again).")
        set_intent.add_argument("qualified_name")
        set_intent.add_argument("intent", choices=[*Intent.values, "derived"])
        review = self.subcommand("review", "Accept a new or changed tool's current definition.")
        review.add_argument("qualified_name")

    def _tool(self, qualified_name: str) -> Tool:
        tool = Tool.objects.select_related("server").filter(qualified_name=qualified_name).first()
        if tool is None:
            raise CommandError(f"No tool named {qualified_name!r} (see `tools list`; names are server__tool).")
        return tool

    def handle_list(self, *, json: bool, server: str | None, **options: Any) -> None:
        tools = Tool.objects.select_related("server")
        if server:
            tools = tools.filter(server__name=server)
        rows = [tool_row(t) for t in tools]
        if json:
            self.print_json(rows)
            return
        for row in rows:
            intent = "per call" if row["classified_per_call"] else row["intent"]
            state = "" if row["available"] else " (unavailable)"
            self.stdout.write(f"{row['qualified_name']:<40} {intent:<9} {row['review_state']:<9}{state}")

    def handle_set_intent(self, *, qualified_name: str, intent: str, **options: Any) -> None:
        tool = set_tool_intent(
            self._tool(qualified_name), "" if intent == "derived" else intent, actor=self.actor(options)
        )
        self.stdout.write(f"{tool.qualified_name}: intent {base_intent(tool)[0].value} ({base_intent(tool)[1]}).")

    def handle_review(self, *, qualified_name: str, **options: Any) -> None:
        tool = review_tool(self._tool(qualified_name), actor=self.actor(options))
        self.stdout.write(f"{tool.qualified_name}: reviewed; it can be assigned again.")
