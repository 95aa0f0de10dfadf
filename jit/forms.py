from __future__ import annotations

from django import forms

from jit.choices import GrantScope


class ApproveForm(forms.Form):
    scope = forms.ChoiceField(choices=GrantScope.choices, initial=GrantScope.CALL)
    ttl_minutes = forms.IntegerField(min_value=1, required=False, help_text="Minutes (for a tool grant).")


class DenyForm(forms.Form):
    reason = forms.CharField(max_length=500)
