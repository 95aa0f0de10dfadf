"""`manage.py tools list|show|set-intent|review`: the tool catalogue."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandError

from tools.choices import Intent, ReviewState
from tools.intent import base_intent
from tools.models import Tool
from tools.servers.registry import classified_per_call
from tools.services import current_definition_text, definition_changes, review_tool, set_tool_intent
from vigilus.management.base import AreaCommand

HASH = re.compile(r"[0-9a-f]{64}")


def tool_row(tool: Tool) -> dict[str, Any]:
    intent, why = base_intent(tool)
    return {
        "qualified_name": tool.qualified_name,
        "server": tool.server.name,
        "name": tool.name,
        "intent": intent.value,
        "intent_reason": why,
        "classified_per_call": classified_per_call(tool.qualified_name),
        "review_state": tool.review_state,
        "available": tool.available,
        "description": tool.description,
        "definition_hash": tool.definition_hash,
        "reviewed_hash": tool.reviewed_hash,
    }


def definition_report(tool: Tool) -> dict[str, Any]:
    """The tool's definition and what changed since it was last reviewed (None: nothing kept to compare with)."""
    changes = definition_changes(tool)
    return {
        "qualified_name": tool.qualified_name,
        "review_state": tool.review_state,
        "available": tool.available,
        "definition_hash": tool.definition_hash,
        "reviewed_hash": tool.reviewed_hash,
        "compared_with_hash": (tool.reviewed_definition or {}).get("hash", "") if changes is not None else "",
        "definition": current_definition_text(tool),
        "changes": None if changes is None else [vars(change) for change in changes],
    }


class Command(AreaCommand):
    help = "List tools, show a tool's definition and changes, set a tool's intent, or review a new or changed tool."

    def add_subcommands(self) -> None:
        listing = self.subcommand("list", "List every discovered tool.", json_output=True)
        listing.add_argument("--server", help="only this server's tools")
        show = self.subcommand(
            "show", "Show a tool's definition and what changed since it was last reviewed.", json_output=True
        )
        show.add_argument("qualified_name")
        set_intent = self.subcommand("set-intent", "Set a tool's intent (or `derived` to use its annotations again).")
        set_intent.add_argument("qualified_name")
        set_intent.add_argument("intent", choices=[*Intent.values, "derived"])
        review = self.subcommand(
            "review",
            "Accept a new or changed tool's definition, after printing it and what changed since the last review.",
            json_output=True,
        )
        review.add_argument("qualified_name")
        review.add_argument(
            "--hash",
            dest="seen_hash",
            metavar="HASH",
            help="the definition hash you looked at (`tools show`): refused if the definition is no longer that one",
        )

    def _tool(self, qualified_name: str) -> Tool:
        tool = Tool.objects.select_related("server").filter(qualified_name=qualified_name).first()
        if tool is None:
            raise CommandError(f"No tool named {qualified_name!r} (see `tools list`; names are server__tool).")
        return tool

    def _print_definition(self, report: dict[str, Any]) -> None:
        state = dict(ReviewState.choices)[report["review_state"]]
        unavailable = "" if report["available"] else ", unavailable"
        self.stdout.write(f"{report['qualified_name']}: {state}{unavailable}")
        self.stdout.write(f"definition {report['definition_hash']}")
        changes = report["changes"]
        if report["review_state"] == ReviewState.CHANGED and changes:
            before = report["compared_with_hash"][:12]
            self.stdout.write(f"What changed since it was last reviewed ({before}; lines: - as reviewed, + now):")
            for change in changes:
                self.stdout.write(change["diff"])
            return
        if report["review_state"] == ReviewState.CHANGED and changes == []:
            self.stdout.write("Description, input schema and annotations read as reviewed; only whitespace differs.")
            return
        if report["review_state"] == ReviewState.CHANGED:
            self.stdout.write("The definition accepted before the change was not kept. The definition now:")
        for label, text in report["definition"].items():
            self.stdout.write(f"--- {label}")
            self.stdout.write(text)

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

    def handle_show(self, *, qualified_name: str, json: bool, **options: Any) -> None:
        report = definition_report(self._tool(qualified_name))
        if json:
            self.print_json(report)
        else:
            self._print_definition(report)

    def handle_set_intent(self, *, qualified_name: str, intent: str, **options: Any) -> None:
        tool = set_tool_intent(
            self._tool(qualified_name), "" if intent == "derived" else intent, actor=self.actor(options)
        )
        self.stdout.write(f"{tool.qualified_name}: intent {base_intent(tool)[0].value} ({base_intent(tool)[1]}).")

    def handle_review(self, *, qualified_name: str, seen_hash: str | None, json: bool, **options: Any) -> None:
        if seen_hash is not None and not HASH.fullmatch(seen_hash.strip().lower()):
            raise CommandError(
                f"--hash {seen_hash!r} is not a definition hash: give the 64 hex digits `tools show` prints."
            )
        actor = self.actor(options)
        tool = self._tool(qualified_name)
        report = definition_report(tool)
        if not json:
            self._print_definition(report)
        # Without --hash, the definition just printed is the one reviewed: a change in between is refused too.
        seen = report["definition_hash"] if seen_hash is None else seen_hash
        reviewed = review_tool(tool, actor=actor, seen_hash=seen)
        if json:
            self.print_json({**report, "reviewed": True, "reviewed_hash": reviewed.reviewed_hash})
        else:
            self.stdout.write(f"{reviewed.qualified_name}: reviewed; it can be assigned again.")
