from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.forms.boundfield import BoundWidget

from operators.models import Operator, Plan
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
ACCEPT_CONTEXT_COST = "keep_tools_anyway"  # the checkbox that keeps tools the context warning was about
CONTEXT_SHARE_WARNED = 3  # tool schemas taking more than a third of the model's context are warned about

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
            "plan_first",
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

    def clean(self) -> dict:
        """Tools whose schemas take a large share of the model's context (each request carries all of them) are
        warned about, and kept only once the person ticks "keep these tools anyway"."""
        cleaned = super().clean()
        warning = "" if self._context_unchanged(cleaned) else self.context_warning(cleaned)
        if warning and not self.data.get(ACCEPT_CONTEXT_COST):
            self.fields[ACCEPT_CONTEXT_COST] = forms.BooleanField(
                required=False, label="Keep these tools anyway", help_text=warning
            )
            raise forms.ValidationError(warning, code="context")
        return cleaned

    def _context_unchanged(self, cleaned: dict) -> bool:
        """An edit that keeps the tools, provider and model it had was warned about (or not) when they were set."""
        operator = self.instance
        if operator.pk is None:
            return False
        chosen = {tool.pk for tool in cleaned.get("tools") or ()}
        same_tools = chosen == set(operator.tools.values_list("pk", flat=True))
        return same_tools and cleaned.get("provider") == operator.provider and cleaned.get("model") == operator.model

    @staticmethod
    def context_warning(cleaned: dict) -> str:
        """Why the chosen tools crowd the model's context ("" when they do not), from what is known without
        asking the server (the provider's setting, else the default for its kind)."""
        from providers.context import context_window, estimate_tools

        provider, tools = cleaned.get("provider"), list(cleaned.get("tools") or ())
        model = (cleaned.get("model") or "").strip() or (provider.default_model if provider else "")
        if provider is None or not tools or not model:
            return ""
        schemas = [
            {
                "type": "function",
                "function": {
                    "name": tool.qualified_name,
                    "description": tool.description[:1024],
                    "parameters": tool.input_schema or {"type": "object", "properties": {}},
                },
            }
            for tool in tools
        ]
        window = context_window(provider, model, look_up=False)
        cost = estimate_tools(schemas)
        if cost * CONTEXT_SHARE_WARNED <= window.tokens:
            return ""
        return (
            f"The {len(tools)} tools chosen take about {cost:,} tokens of {model}'s {window.tokens:,}-token context "
            f"({cost / window.tokens:.0%}) in every request, before the task, the answers and any tool output: "
            "runs will have their older tool outputs cut early, or not fit at all. Choose fewer tools, or a model "
            "with a larger context (set it on the provider if its server runs with more)."
        )

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
    plan_mode = forms.BooleanField(
        label="Plan first",
        required=False,
        help_text="Read calls run; every other call becomes a step of a plan you review and approve as a whole "
        "before any of it runs.",
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


class PlanDecisionForm(forms.Form):
    """A decision on the plan the page showed: `plan` is its number, so a page left open on an earlier plan
    cannot decide a newer one it never showed."""

    id_prefix = "plan"  # of its fields' ids: the Approve and Reject forms share a page
    plan = forms.IntegerField(widget=forms.HiddenInput)

    def __init__(self, *args: Any, shown: Plan | None, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}-%s")
        super().__init__(*args, **kwargs)
        self.shown = shown
        if shown is not None:
            self.fields["plan"].initial = shown.number

    def clean_plan(self) -> int:
        number = self.cleaned_data["plan"]
        if self.shown is None or number != self.shown.number:
            raise forms.ValidationError(
                "This page showed an earlier plan; the run has a new one now. Review it before you decide."
            )
        return number


class PlanApproveForm(PlanDecisionForm):
    """Approve the plan as a whole: each step's "run this step" box comes ticked; a step left unticked is skipped."""

    id_prefix = "approve"
    run_steps = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, shown: Plan | None, **kwargs: Any) -> None:
        super().__init__(*args, shown=shown, **kwargs)
        self.indexes = [step.index for step in shown.steps.all()] if shown is not None else []
        self.fields["run_steps"].choices = [(index, f"Run step {index}") for index in self.indexes]
        self.fields["run_steps"].initial = self.indexes

    def ticked(self) -> set[int]:
        """The steps whose box is ticked as the person left them (all of them on a fresh form)."""
        if not self.is_bound:
            return set(self.indexes)
        data = self.data
        ticked = set()
        for value in data.getlist("run_steps") if hasattr(data, "getlist") else data.get("run_steps", ()):
            with suppress(ValueError):
                ticked.add(int(value))
        return ticked

    def skipped(self) -> list[int]:
        return sorted(set(self.indexes) - set(self.cleaned_data["run_steps"]))


class PlanRejectForm(PlanDecisionForm):
    id_prefix = "reject"
    reason = forms.CharField(
        label="Why reject it",
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why the plan is rejected; it is kept with the run."},
        help_text="Nothing in the plan runs and the run ends; the reason is kept with it.",
    )


class ReplyForm(forms.Form):
    text = forms.CharField(
        label="Reply",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "e.g. good, now restart it"}),
        error_messages={"required": "Say what to do next."},
        help_text="The same Operator goes on with the whole conversation; its new steps are added to this run.",
    )
