"""The provider form helps: the endpoint's models to pick the default model from (also before the provider is
saved), "Save & test" that saves and then runs the connection test beside the form, and errors next to the
field they are about, with everything typed kept except the key (secrets are never sent back to a page)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from providers.choices import CheckStatus
from providers.models import Provider
from providers.services import create_provider
from tests.fakes.llm import FakeLLMServer, text

KEY = "sk-picker-7c0ffee51d"

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> FakeLLMServer:
    with FakeLLMServer([text("pong")], models=["small-1", "large-2"]) as server:
        yield server


def picker(client: Client, url: str, **data: str) -> str:
    response = client.post(url, data)
    assert response.status_code == 200
    return response.content.decode()


def test_the_models_of_an_endpoint_not_saved_yet_can_be_picked(admin_client: Client, fake: FakeLLMServer) -> None:
    url = reverse("provider-model-picker")
    page = picker(admin_client, url, kind="openai_compatible", base_url=fake.url + "/v1", default_model="large-2")

    assert "2 models at this endpoint" in page
    select = page[page.index("<select") : page.index("</select>")]
    assert re.findall(r'<option value="([^"]+)"(?: selected)?>', select) == ["large-2", "small-1"]
    assert '<option value="large-2" selected>' in page  # the model already typed is the one picked
    assert '<datalist id="model-options" hx-swap-oob="true">' in page  # the box suggests them as one types too
    assert not Provider.objects.exists()  # listing saves nothing


def test_a_saved_providers_key_is_used_when_the_box_is_left_empty(
    admin_client: Client, admin_user: object, fake: FakeLLMServer
) -> None:
    provider = create_provider(
        actor=admin_user, name="lab", kind="openai_compatible", base_url=fake.url + "/v1", api_key=KEY
    )
    url = reverse("provider-model-picker", args=[provider.pk])

    page = picker(admin_client, url, kind="openai_compatible", base_url=fake.url + "/v1", api_key="")

    assert "small-1" in page and KEY not in page
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    picker(admin_client, url, kind="openai_compatible", base_url=fake.url + "/v1", api_key="sk-typed-just-now")
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-typed-just-now"  # what the form now says


def test_the_picker_says_what_to_fix_before_models_can_be_listed(admin_client: Client) -> None:
    url = reverse("provider-model-picker")

    assert "Choose the kind of provider first." in picker(admin_client, url, kind="", base_url="")
    assert "Enter an http:// or https:// URL." in picker(
        admin_client, url, kind="openai_compatible", base_url="nas.lan:8080"
    )
    assert "An API key is required for Anthropic." in picker(admin_client, url, kind="anthropic", base_url="")
    assert "Cannot reach http://127.0.0.1:9/v1" in picker(
        admin_client, url, kind="openai_compatible", base_url="http://127.0.0.1:9/v1"
    )


def test_only_admins_list_models_through_the_form(viewer_client: Client, fake: FakeLLMServer) -> None:
    data = {"kind": "openai_compatible", "base_url": fake.url + "/v1"}
    assert viewer_client.post(reverse("provider-model-picker"), data).status_code == 403
    assert fake.requests == []


def form_data(**overrides: object) -> dict:
    data = {"name": "lab", "kind": "openai_compatible", "base_url": "", "api_key": "", "default_model": "small-1"}
    data["enabled"] = "on"
    data.update(overrides)
    return data


def test_save_and_test_saves_then_starts_the_connection_test_and_shows_it_beside_the_form(
    admin_client: Client, fake: FakeLLMServer, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(
            reverse("provider-create"), form_data(base_url=fake.url + "/v1", then="test"), follow=True
        )

    provider = Provider.objects.get(name="lab")
    assert response.redirect_chain == [(reverse("provider-edit", args=[provider.pk]), 302)]
    assert len(queued) == 1  # the test, sent to a worker once the provider is saved
    assert provider.last_test_status == CheckStatus.RUNNING
    page = response.content.decode()
    assert "Saved lab; its connection test runs on a worker." in page
    result = page[page.index('id="provider-result"') :]
    assert "Connection: Testing…" in result and 'hx-trigger="every 2s"' in result  # it follows the worker
    assert 'name="then" value="test"' in page


def test_plain_save_returns_to_the_list_without_testing(
    admin_client: Client, fake: FakeLLMServer, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(reverse("provider-create"), form_data(base_url=fake.url + "/v1"))

    assert response.status_code == 302 and response.url == reverse("providers")
    assert not [callback for callback in queued if "delay" in repr(callback)]
    assert Provider.objects.get(name="lab").last_test_status == CheckStatus.UNTESTED


def field_group(page: str, name: str) -> str:
    """The field `name` as rendered: from its label through its help and errors to its input."""
    at = page.index(f'name="{name}"')
    return page[page.rindex("<label", 0, at) : page.index(">", at) + 1]


def test_an_error_is_shown_next_to_its_field_and_the_rest_is_kept(admin_client: Client) -> None:
    page = admin_client.post(
        reverse("provider-create"), form_data(base_url="nas.lan:8080", api_key=KEY, default_model="large-2")
    ).content.decode()

    url_field = field_group(page, "base_url")
    assert "Enter an http:// or https:// URL." in url_field and 'aria-invalid="true"' in url_field
    assert 'value="nas.lan:8080"' in url_field
    assert 'value="large-2"' in field_group(page, "default_model") and 'value="lab"' in field_group(page, "name")
    assert "Enter an http:// or https:// URL." not in field_group(page, "name")
    assert KEY not in page  # a secret is never sent back ...
    assert "type the API key again" in field_group(page, "api_key")  # ... so the box says to type it again
    assert not Provider.objects.exists()


def test_labels_are_written_for_people(admin_client: Client) -> None:
    page = admin_client.get(reverse("provider-create")).content.decode()
    labels = re.findall(r"<label[^>]*>([^<]+)</label>", page)
    assert {"Endpoint URL:", "API key:", "Default model:", "Context windows:"} <= set(labels)
    assert not [label for label in labels if re.search(r"\b(Url|Api|Tls|Jit)\b", label)]
