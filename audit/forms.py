"""The Audit page's filters."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone

from audit.choices import Decision
from tools.choices import Intent


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        required=False,
        label="Operator or person",
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": "name"}),
    )
    run = forms.IntegerField(required=False, min_value=1, label="Run", widget=forms.NumberInput(attrs={"min": 1}))
    tool = forms.CharField(
        required=False, label="Tool", max_length=200, widget=forms.TextInput(attrs={"placeholder": "e.g. shell"})
    )
    intent = forms.ChoiceField(required=False, label="Intent", choices=[("", "any intent"), *Intent.choices])
    decision = forms.ChoiceField(required=False, label="Decision", choices=[("", "any decision"), *Decision.choices])
    event = forms.CharField(
        required=False,
        label="Event",
        max_length=100,
        widget=forms.TextInput(attrs={"placeholder": "e.g. jit.approved"}),
    )
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    FILTERS = ("actor", "run", "tool", "intent", "decision", "event", "since", "until")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Times are typed, read and shown in the time zone in use (the site's): the labels name it.
        zone = timezone.get_current_timezone_name()
        self.fields["since"].label = f"From ({zone})"
        self.fields["until"].label = f"To ({zone})"

    def filters(self) -> dict:
        """The cleaned filters (empty ones dropped) for audit.services.search()."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if k in self.FILTERS and v not in ("", None)}
