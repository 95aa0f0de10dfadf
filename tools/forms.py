from __future__ import annotations

from django import forms

from tools.choices import Intent, ReviewState, Transport
from tools.models import MCPServer


class MCPServerForm(forms.ModelForm):
    transport = forms.ChoiceField(choices=[c for c in Transport.choices if c[0] != Transport.BUILTIN])

    class Meta:
        model = MCPServer
        fields = ["name", "transport", "command", "args", "env", "url", "headers", "enabled", "trusted"]
        help_texts = {
            "env": 'A JSON object, e.g. {"API_TOKEN": "..."}; stored encrypted, never shown again.',
            "headers": 'A JSON object, e.g. {"Authorization": "Bearer ..."}; stored encrypted, never shown again.',
        }


# What `tools.intent.effective_intent_label` says of command-line tools (operators.forms names it the same).
PER_CALL = "per call"


class ToolFilterForm(forms.Form):
    server = forms.CharField(required=False)
    # Filters on the intent the catalogue shows: command-line tools only under "per call", as their command decides.
    intent = forms.ChoiceField(
        choices=[("", "any intent"), *Intent.choices, (PER_CALL, "per call (command line)")], required=False
    )
    review_state = forms.ChoiceField(choices=[("", "any state"), *ReviewState.choices], required=False)


class ToolIntentForm(forms.Form):
    intent = forms.ChoiceField(choices=[("", "derived from annotations"), *Intent.choices], required=False)
