"""The Operator form warns when the chosen tools' schemas crowd the model's context: every request carries all
of them, so on a small model they leave little room for the task and the tool outputs."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from operators.models import Operator
from providers.models import Provider
from providers.services import create_provider
from tests.operators.test_operator_form import form_data, server, tool

pytestmark = pytest.mark.django_db

WORDY = "Runs a command on a host and returns its output, exit status and the time it took. " * 12


@pytest.fixture
def small_model(admin_user: User) -> Provider:
    return create_provider(
        actor=admin_user, name="local", kind="openai_compatible", base_url="http://127.0.0.1:1/v1", default_model="tiny"
    )


def wordy_tools(count: int) -> list:
    srv = server("ops")
    schema = {"type": "object", "properties": {"command": {"type": "string", "description": WORDY}}}
    return [tool(srv, f"run_{n}", description=WORDY, input_schema=schema) for n in range(count)]


def test_many_tools_on_a_small_model_are_warned_about_and_kept_once_confirmed(
    admin_client: Client, small_model: Provider
) -> None:
    tools = wordy_tools(12)

    warned = admin_client.post(reverse("operator-create"), form_data(small_model, tools))

    assert warned.status_code == 200 and not Operator.objects.exists()
    page = warned.content.decode()
    assert "The 12 tools chosen take about" in page and "of tiny&#x27;s 8,192-token context" in page
    assert "Keep these tools anyway" in page

    kept = admin_client.post(reverse("operator-create"), form_data(small_model, tools, keep_tools_anyway="on"))

    assert kept.status_code == 302
    assert Operator.objects.get(name="fixer").tools.count() == 12


def test_a_larger_context_set_on_the_provider_needs_no_warning(admin_client: Client, small_model: Provider) -> None:
    small_model.context_windows = {"tiny": 131_072}
    small_model.save()

    response = admin_client.post(reverse("operator-create"), form_data(small_model, wordy_tools(12)))

    assert response.status_code == 302


def test_a_few_tools_need_no_warning(admin_client: Client, small_model: Provider) -> None:
    response = admin_client.post(reverse("operator-create"), form_data(small_model, wordy_tools(2)))

    assert response.status_code == 302


def test_editing_other_fields_of_a_confirmed_operator_asks_no_more(admin_client: Client, small_model: Provider) -> None:
    tools = wordy_tools(12)
    admin_client.post(reverse("operator-create"), form_data(small_model, tools, keep_tools_anyway="on"))
    operator = Operator.objects.get(name="fixer")

    renamed = admin_client.post(
        reverse("operator-edit", args=[operator.pk]), form_data(small_model, tools, description="Fixes more.")
    )
    more = admin_client.post(reverse("operator-edit", args=[operator.pk]), form_data(small_model, tools[:11]))

    assert renamed.status_code == 302
    assert more.status_code == 200 and "The 11 tools chosen take about" in more.content.decode()
