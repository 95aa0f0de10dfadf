from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from vigilus import login_throttle
from vigilus.choices import Role, TokenRole
from vigilus.crypto import SecretTextarea
from vigilus.models import SiteSettings


def add_service_errors(form: forms.BaseForm, error: Exception) -> None:
    """A service's refusal shown on the form: a ValidationError's messages next to the fields it names
    (when the form has them), anything else (an InventoryError, say) as a message for the whole form."""
    if not isinstance(error, ValidationError):
        form.add_error(None, str(error))
    elif hasattr(error, "error_dict"):
        for field, messages in error.message_dict.items():
            form.add_error(field if field in form.fields else None, messages)
    else:
        form.add_error(None, error.messages)


class ThrottledAuthenticationForm(AuthenticationForm):
    """The login form, refusing further attempts after too many failures."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked_out": "Too many failed logins. Try again in %(minutes)d minutes.",
    }

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        client = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        if login_throttle.is_locked_out(username, client):
            raise ValidationError(
                self.error_messages["locked_out"],
                code="locked_out",
                params={"minutes": max(1, settings.LOGIN_FAILURE_WINDOW // 60)},
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            login_throttle.record_failure(username, client)
            raise
        login_throttle.clear_failures(username, client)
        return cleaned


class SiteSettingsForm(forms.ModelForm):
    class Meta:
        model = SiteSettings
        fields = [
            "instance_name",
            "jit_mode",
            "grant_default_ttl_minutes",
            "grant_max_ttl_minutes",
            "request_expiry_minutes",
            "hold_untrusted_runs_strict",
            "four_eyes_approvals",
            "notification_urls",
            "orchestrator_provider",
            "orchestrator_model",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # One URL per line: a box of lines, still write-only (the stored URLs are never shown back).
        self.fields["notification_urls"].widget = SecretTextarea(attrs={"rows": 4})


class UserCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        required=False,
        help_text="Leave empty to generate one; it is shown once.",
    )


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="What it is for: ci, home-assistant, ...")
    role = forms.ChoiceField(
        choices=TokenRole.choices,
        initial=TokenRole.VIEWER,
        help_text="Viewer reads; submitter also gives tasks; approver also decides access requests. "
        "A token never does more than you may.",
    )
    expires_days = forms.IntegerField(
        label="Expires after (days)", min_value=1, max_value=3650, required=False, help_text="Empty: never."
    )
