from __future__ import annotations

from django import forms

from tools.catalogue import PER_CALL
from tools.choices import Intent, ReviewState, Transport
from tools.models import MCPServer


class MCPServerForm(forms.ModelForm):
    transport = forms.ChoiceField(choices=[c for c in Transport.choices if c[0] != Transport.BUILTIN])

    class Meta:
        model = MCPServer
        fields = ["name", "transport", "command", "args", "env", "url", "headers", "enabled", "trusted"]
        labels = {"args": "Arguments", "env": "Environment variables", "url": "URL", "headers": "HTTP headers"}
        help_texts = {
            "env": 'A JSON object, e.g. {"API_TOKEN": "..."}; stored encrypted, never shown again.',
            "headers": 'A JSON object, e.g. {"Authorization": "Bearer ..."}; stored encrypted, never shown again.',
        }


class ToolFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or description", "autocomplete": "off"}),
    )
    # A name, not a choice: a server that is gone simply matches no tools.
    server = forms.CharField(required=False, label="Server", widget=forms.Select)
    # Filters on the intent the catalogue shows: command-line tools only under "per call", as their command decides.
    intent = forms.ChoiceField(
        label="Intent",
        choices=[("", "any intent"), *Intent.choices, (PER_CALL, "per call (command line)")],
        required=False,
    )
    review_state = forms.ChoiceField(label="Review", choices=[("", "any state"), *ReviewState.choices], required=False)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        names = MCPServer.objects.order_by("name").values_list("name", flat=True)
        self.fields["server"].widget.choices = [("", "any server"), *((name, name) for name in names)]


class ToolIntentForm(forms.Form):
    intent = forms.ChoiceField(choices=[("", "derived from annotations"), *Intent.choices], required=False)
