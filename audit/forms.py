"""The Audit page's filters."""

from __future__ import annotations

from django import forms

from audit.choices import Decision
from tools.choices import Intent


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, label="Operator or person", max_length=150)
    run = forms.IntegerField(required=False, min_value=1, label="Run")
    tool = forms.CharField(required=False, max_length=200)
    intent = forms.ChoiceField(required=False, choices=[("", "any intent"), *Intent.choices])
    decision = forms.ChoiceField(required=False, choices=[("", "any decision"), *Decision.choices])
    event = forms.CharField(required=False, max_length=100)
    since = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    after = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    FILTERS = ("actor", "run", "tool", "intent", "decision", "event", "since", "until")

    def filters(self) -> dict:
        """The cleaned filters (empty ones dropped) for audit.services.search()."""
        if not self.is_valid():
            return {}
        return {k: v for k, v in self.cleaned_data.items() if k in self.FILTERS and v not in ("", None)}
