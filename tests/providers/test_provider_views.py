"""Providers in the dashboard: list, create/edit/delete with a write-only key, models, checks on a worker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse

from providers.choices import CheckStatus
from providers.models import Provider
from providers.services import create_provider
from tests.conftest import ROOT, process_env, wait_for
from tests.fakes.llm import FakeLLMServer, text, tool_call

KEY = "sk-dash-51c0ffee77aa"

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> FakeLLMServer:
    with FakeLLMServer([text("pong")], models=["small-1", "large-2"]) as server:
        yield server


@pytest.fixture
def provider(admin_user: object, fake: FakeLLMServer) -> Provider:
    return create_provider(
        actor=admin_user,
        name="lab",
        kind="openai_compatible",
        base_url=fake.url + "/v1",
        api_key=KEY,
        default_model="small-1",
    )


def form_data(**overrides: object) -> dict:
    data = {
        "name": "lab",
        "kind": "openai_compatible",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key": "",
        "default_model": "m",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_list_shows_kind_endpoint_model_and_status(admin_client: Client, provider: Provider) -> None:
    page = admin_client.get(reverse("providers")).content.decode()
    assert "lab" in page and "OpenAI-compatible endpoint" in page and provider.endpoint in page
    assert "small-1" in page and "Connection: Not tested" in page
    assert KEY not in page


def test_viewer_sees_the_list_but_cannot_change_anything(viewer_client: Client, provider: Provider) -> None:
    page = viewer_client.get(reverse("providers")).content.decode()
    assert "lab" in page and "Add a provider" not in page
    assert viewer_client.post(reverse("provider-create"), form_data(name="x")).status_code == 403
    assert viewer_client.post(reverse("provider-delete", args=[provider.pk])).status_code == 403
    assert viewer_client.post(reverse("provider-check", args=[provider.pk, "connection"])).status_code == 403
    assert Provider.objects.count() == 1


def test_admin_creates_a_provider_without_contacting_it(admin_client: Client, fake: FakeLLMServer) -> None:
    response = admin_client.post(reverse("provider-create"), form_data(base_url=fake.url + "/v1", api_key=KEY))
    assert response.status_code == 302
    assert Provider.objects.get(name="lab").api_key == KEY
    assert fake.requests == []


def test_form_names_the_field_that_is_wrong(admin_client: Client) -> None:
    page = admin_client.post(reverse("provider-create"), form_data(kind="anthropic", base_url="")).content.decode()
    assert "An API key is required for Anthropic." in page
    page = admin_client.post(reverse("provider-create"), form_data(base_url="nas.lan:8080")).content.decode()
    assert "Enter an http:// or https:// URL." in page
    assert not Provider.objects.exists()


def test_api_key_is_write_only_in_the_edit_form(admin_client: Client, provider: Provider) -> None:
    url = reverse("provider-edit", args=[provider.pk])
    page = admin_client.get(url).content.decode()
    assert KEY not in page and "set (type a new value to replace it)" in page

    admin_client.post(url, form_data(base_url=provider.base_url, default_model="large-2", api_key=""))
    provider.refresh_from_db()
    assert (provider.default_model, provider.api_key) == ("large-2", KEY)

    admin_client.post(url, form_data(base_url=provider.base_url, api_key="sk-replaced-000111"))
    provider.refresh_from_db()
    assert provider.api_key == "sk-replaced-000111"


def test_delete(admin_client: Client, provider: Provider) -> None:
    assert admin_client.post(reverse("provider-delete", args=[provider.pk])).status_code == 302
    assert not Provider.objects.exists()


def test_models_partial_lists_the_endpoints_models(admin_client: Client, provider: Provider) -> None:
    page = admin_client.get(reverse("provider-models", args=[provider.pk])).content.decode()
    assert "2 models" in page and "small-1" in page and "large-2" in page


def test_model_picker_options_come_from_discovery(viewer_client: Client, provider: Provider) -> None:
    page = viewer_client.get(reverse("provider-model-options"), {"provider": provider.pk}).content.decode()
    assert '<option value="large-2">' in page and '<option value="small-1">' in page


def test_models_partial_says_when_the_endpoint_is_down(admin_client: Client, admin_user: object) -> None:
    down = create_provider(actor=admin_user, name="down", kind="ollama", base_url="http://127.0.0.1:9")
    page = admin_client.get(reverse("provider-models", args=[down.pk])).content.decode()
    assert "Could not list the models of down: unreachable" in page


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_dashboard_checks_run_on_a_worker_and_show_their_outcome(
    celery_worker: str, admin_client: Client, admin_user: object
) -> None:
    with FakeLLMServer([text("pong"), tool_call("get_current_time", {"timezone": "UTC"})]) as fake:
        provider = create_provider(
            actor=admin_user, name="lab", kind="openai_compatible", base_url=fake.url + "/v1", default_model="m"
        )
        partial = admin_client.post(reverse("provider-check", args=[provider.pk, "connection"])).content.decode()
        assert "Testing…" in partial and "every 2s" in partial

        def finished(field: str) -> bool:
            provider.refresh_from_db()
            return getattr(provider, field) not in (CheckStatus.RUNNING, CheckStatus.UNTESTED)

        wait_for(lambda: finished("last_test_status"), timeout=60, what="the connection test on the worker")
        assert provider.last_test_status == CheckStatus.OK, provider.last_test_message
        admin_client.post(reverse("provider-check", args=[provider.pk, "tools"]))
        wait_for(lambda: finished("tools_check_status"), timeout=60, what="the tool-calling check on the worker")
        assert provider.tools_check_status == CheckStatus.OK, provider.tools_check_message
        page = admin_client.get(reverse("provider-status", args=[provider.pk])).content.decode()
        assert "Connection: OK" in page and "Tool calling: OK" in page and "every 2s" not in page


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)  # no open transaction holding SQLite's write lock
def test_the_web_process_does_not_load_litellm_or_the_infrastructure_libraries() -> None:
    """litellm, paramiko, the Docker SDK and the MCP server SDK load only where a model is called, a
    connection made or a server built: not in every web process through the URLconf, views and admin."""
    code = (
        "import django, sys; django.setup(); "
        "import vigilus.asgi, vigilus.urls, providers.views, providers.forms, providers.admin, providers.client, "
        "tools.inventory.views, tools.admin, tools.inventory.services, tools.inventory.connections, "
        "tools.inventory.checks, tools.inventory.targets; "
        "print(any(m in sys.modules for m in ('litellm', 'paramiko', 'docker', 'mcp.server')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=process_env(DJANGO_SETTINGS_MODULE="vigilus.settings"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr[-2000:]


def test_context_windows_are_set_in_the_form_and_bad_ones_named(admin_client: Client, fake: FakeLLMServer) -> None:
    url = reverse("provider-create")

    bad = admin_client.post(url, form_data(base_url=fake.url + "/v1", context_windows="small-1 lots")).content.decode()
    tiny = admin_client.post(url, form_data(base_url=fake.url + "/v1", context_windows="small-1=100")).content.decode()
    saved = admin_client.post(url, form_data(base_url=fake.url + "/v1", context_windows="small-1=16384\nlarge-2 32k"))

    assert "Write &#x27;small-1 lots&#x27; as model=tokens" in bad
    assert "The context window of small-1 must be between 512" in tiny
    assert saved.status_code == 200  # "32k" is no number either
    ok = admin_client.post(url, form_data(base_url=fake.url + "/v1", context_windows="small-1=16384, large-2=32768"))
    assert ok.status_code == 302
    assert Provider.objects.get(name="lab").context_windows == {"small-1": 16384, "large-2": 32768}
