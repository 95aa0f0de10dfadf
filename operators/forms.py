from __future__ import annotations

from dataclasses import dataclass, field

from django import forms
from django.forms.boundfield import BoundWidget

from operators.models import Operator
from tools.choices import Intent
from tools.intent import effective_intent_label
from tools.models import Tool

# What each intent lets a tool do, in plain words (the ceiling's help text says the same).
INTENT_MEANING: dict[Intent, str] = {
    Intent.READ: "look only",
    Intent.WRITE: "change files and settings",
    Intent.EXEC: "run programs",
    Intent.ELEVATE: "root (sudo)",
}

PER_CALL = "per call"  # what `effective_intent_label` says of command-line tools

# The picker's intent headings, weakest first; command-line tools last, as their command decides.
INTENT_HEADINGS: dict[str, str] = {
    **{
        intent.value: f"{intent.value} — {INTENT_MEANING[intent]}; "
        + ("runs at once" if intent == Intent.READ else "needs a grant")
        for intent in Intent
    },
    PER_CALL: f"{PER_CALL} — read-only commands run at once; anything else needs a grant",
}


@dataclass
class IntentGroup:
    """One intent's tool checkboxes within a server, under a plain-words heading."""

    intent: str
    heading: str
    boxes: list[BoundWidget] = field(default_factory=list)


class ToolChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, tool: Tool) -> str:
        return tool.name


class OperatorForm(forms.ModelForm):
    tools = ToolChoiceField(
        # Only tools an Operator may use now: withdrawn, unavailable and disabled servers' tools are left out.
        queryset=Tool.objects.assignable().select_related("server").order_by("server__name", "name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Operator
        fields = [
            "name",
            "description",
            "system_prompt",
            "provider",
            "model",
            "tools",
            "ceiling",
            "jit_mode",
            "max_steps",
            "token_budget",
            "cost_budget",
            "enabled",
        ]
        widgets = {
            "model": forms.TextInput(attrs={"list": "model-options", "autocomplete": "off"}),
            "system_prompt": forms.Textarea(attrs={"rows": 6}),
            "description": forms.Textarea(attrs={"rows": 2}),
        }
        help_texts = {
            "ceiling": "The most this Operator may ever do. "
            + " ".join(f"{intent.label}: {words}." for intent, words in INTENT_MEANING.items())
            + " Anything above is refused without asking.",
            "jit_mode": "Below the ceiling, write/exec/elevate calls need a grant: strict waits for a person, "
            "lenient approves at once and logs it, inherit follows Settings.",
        }

    def tools_by_server(self) -> dict[str, list[IntentGroup]]:
        """The tool checkboxes by server name, and within each server by effective intent in INTENT_HEADINGS order.

        Built from the one query that lists the choices: each checkbox carries its Tool (server joined)."""
        by_server: dict[str, dict[str, IntentGroup]] = {}
        for checkbox in self["tools"]:
            tool: Tool = checkbox.data["value"].instance
            intent = effective_intent_label(tool)
            groups = by_server.setdefault(tool.server.name, {})
            groups.setdefault(intent, IntentGroup(intent, INTENT_HEADINGS[intent])).boxes.append(checkbox)
        order = list(INTENT_HEADINGS)
        return {
            server: sorted(groups.values(), key=lambda group: order.index(group.intent))
            for server, groups in by_server.items()
        }


class TaskForm(forms.Form):
    task = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="What should be done?")
    operator = forms.ModelChoiceField(
        queryset=Operator.objects.enabled(), required=False, empty_label="Let the orchestrator choose"
    )


class ScheduleForm(forms.Form):
    name = forms.SlugField(max_length=64)
    operator = forms.ModelChoiceField(queryset=Operator.objects.all())
    cron = forms.CharField(max_length=100, help_text="e.g. */15 * * * *, or hourly, nightly, daily, weekly")
    task = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class WebhookForm(forms.Form):
    name = forms.SlugField(max_length=64)
    operator = forms.ModelChoiceField(queryset=Operator.objects.all())
    instructions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        required=False,
        help_text="What the Operator should do with each alert.",
    )
