"""Labels are written for people: no label made from a field's name that spells an acronym the way Django's
capitalize() leaves it ("Jit mode", "Url", "Tls", "Api key"), and notification URLs are a box of lines."""

from __future__ import annotations

import re

import pytest
from django import forms

from audit.forms import AuditFilterForm
from operators.forms import OperatorForm, ScheduleForm, TaskForm, WebhookForm
from providers.forms import ProviderForm
from tools.forms import MCPServerForm, ToolFilterForm, ToolIntentForm
from tools.inventory.forms import (
    CredentialForm,
    DockerEndpointForm,
    ScanNetworkForm,
    ServerForm,
    WazuhInstanceForm,
)
from vigilus.forms import ApiTokenForm, SiteSettingsForm, UserCreateForm

pytestmark = pytest.mark.django_db

FORMS: list[type[forms.BaseForm]] = [
    AuditFilterForm,
    OperatorForm,
    ScheduleForm,
    TaskForm,
    WebhookForm,
    ProviderForm,
    MCPServerForm,
    ToolFilterForm,
    ToolIntentForm,
    CredentialForm,
    DockerEndpointForm,
    ScanNetworkForm,
    ServerForm,
    WazuhInstanceForm,
    ApiTokenForm,
    SiteSettingsForm,
    UserCreateForm,
]
MISSPELT = re.compile(r"\b(Jit|Url|Urls|Tls|Api|Mcp|Ssh|Ttl|Cidr|Ca|Is|Args|Env)\b")


@pytest.mark.parametrize("form_class", FORMS, ids=lambda form_class: form_class.__name__)
def test_no_label_is_a_field_name_with_its_acronyms_lower_cased(form_class: type[forms.BaseForm]) -> None:
    form = form_class()
    labels = {name: str(form[name].label) for name in form.fields if not form[name].is_hidden}
    assert not {name: label for name, label in labels.items() if MISSPELT.search(label)}


def test_the_labels_the_issue_named_read_as_people_write_them() -> None:
    assert OperatorForm()["jit_mode"].label == "JIT mode"
    assert SiteSettingsForm()["jit_mode"].label == "Global JIT mode"
    assert MCPServerForm()["url"].label == "URL"
    assert DockerEndpointForm()["tls_verify"].label == "Verify TLS"
    assert DockerEndpointForm()["is_default"].label == "Default endpoint"
    assert ProviderForm()["base_url"].label == "Endpoint URL"


def test_notification_urls_are_a_box_of_lines_not_a_password_box() -> None:
    field = SiteSettingsForm()["notification_urls"]
    assert field.label == "Notification URLs"
    html = str(field)
    assert html.startswith("<textarea") and 'type="password"' not in html
    assert "one per line" in field.help_text
