from __future__ import annotations

from django import forms

from operators.models import Operator
from tools.intent import base_intent
from tools.models import Tool


class ToolChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, tool: Tool) -> str:
        return f"{tool.name} ({base_intent(tool)[0].label.lower()})"


class OperatorForm(forms.ModelForm):
    tools = ToolChoiceField(
        queryset=Tool.objects.assignable().select_related("server"),
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
            "ceiling": "The most this Operator may ever do. Read: look only. Write: change files and settings. "
            "Exec: run programs. Elevate: root (sudo). Anything above is refused without asking.",
            "jit_mode": "Below the ceiling, write/exec/elevate calls need a grant: strict waits for a person, "
            "lenient approves at once and logs it, inherit follows Settings.",
        }

    def tools_by_server(self) -> dict[str, list]:
        """The tool checkboxes grouped by server, for the picker."""
        groups: dict[str, list] = {}
        for checkbox in self["tools"]:
            tool = Tool.objects.select_related("server").get(pk=checkbox.data["value"].value)
            groups.setdefault(tool.server.name, []).append(checkbox)
        return groups


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
