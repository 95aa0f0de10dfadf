"""Adding a provider and an Operator through the dashboard, as a person does it on a phone and on a desktop:
bad input is named next to its field and nothing typed is lost (but a key: secrets are never sent back to a
page), the provider's model is picked from what its endpoint lists, "Save & test" shows the test's result beside
the form, and the Operator's tools are found with the picker's filter and chosen a server at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from operators.models import Operator
from providers.choices import CheckStatus
from providers.models import Provider
from providers.services import create_provider
from tests.conftest import make_user
from tests.e2e.conftest import DESKTOP, PHONE
from tests.fakes.llm import FakeLLMServer, text
from tools.models import Tool
from tools.services import discover_all
from vigilus.choices import Role

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

VIEWPORTS = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
KEY = "sk-e2e-form-0badc0ffee"


@pytest.fixture
def llm() -> Iterator[FakeLLMServer]:
    """The model server the provider points at: it lists two models and answers the connection test."""
    with FakeLLMServer([text("pong")], models=["fake-small", "fake-large"]) as server:
        yield server


def page_width(page: object) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def field(page: object, name: str) -> object:
    """The block of a form field: its label, help, errors and the control itself."""
    return page.locator("form div", has=page.locator(f"[name={name}]")).last


@VIEWPORTS
def test_an_admin_adds_a_provider_picks_its_model_and_tests_it(browse, celery_worker, llm, viewport) -> None:
    make_user("alice", Role.ADMIN)
    browser = browse(viewport)
    page = browser.log_in("alice")
    page.goto(browser.base_url + "/providers/")
    page.get_by_role("link", name="Add a provider").first.click()

    page.get_by_label("Name").fill("lab")
    page.get_by_label("Kind").select_option(label="OpenAI-compatible endpoint")
    page.get_by_label("Endpoint URL").fill("nas.lan:8080")  # no scheme: the server says what is wrong
    page.get_by_label("API key").fill(KEY)
    page.get_by_label("Default model").fill("fake-large")
    page.get_by_role("button", name="Save & test").click()

    url = field(page, "base_url")
    expect(url.locator(".errorlist")).to_have_text("Enter an http:// or https:// URL.")
    expect(page.locator("[name=base_url]")).to_have_attribute("aria-invalid", "true")
    expect(field(page, "name").locator(".errorlist")).to_have_count(0)
    # Everything typed is still there, but the key, which the page asks for again.
    expect(page.get_by_label("Name")).to_have_value("lab")
    expect(page.get_by_label("Kind")).to_have_value("openai_compatible")
    expect(page.get_by_label("Endpoint URL")).to_have_value("nas.lan:8080")
    expect(page.get_by_label("Default model")).to_have_value("fake-large")
    expect(page.get_by_label("API key")).to_have_value("")
    expect(field(page, "api_key")).to_contain_text("type the API key again")
    assert KEY not in page.content()
    assert page_width(page) <= viewport["width"]
    assert not Provider.objects.exists()

    page.get_by_label("Endpoint URL").fill(llm.url + "/v1")
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Load the endpoint's models").click()
    picker = page.get_by_label(re.compile(r"2 models at this endpoint"))
    expect(picker).to_be_visible()
    picker.select_option("fake-small")
    expect(page.get_by_label("Default model")).to_have_value("fake-small")
    assert page_width(page) <= viewport["width"]

    page.get_by_role("button", name="Save & test").click()
    page.wait_for_url(re.compile(r"/providers/\d+/$"))
    result = page.locator("#provider-result")
    expect(result).to_contain_text("Connection: OK", timeout=30_000)
    expect(result).to_contain_text("fake-small answered")
    provider = Provider.objects.get(name="lab")
    assert (provider.default_model, provider.api_key) == ("fake-small", KEY)
    assert provider.last_test_status == CheckStatus.OK
    assert llm.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    box = result.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
    assert page_width(page) <= viewport["width"]
    assert not browser.console_errors, browser.console_errors


@pytest.fixture
def tools(admin_user: object) -> None:
    """The built-in MCP servers' tools, and a provider to give the Operator."""
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()
    # A context large enough for the tools chosen (a small one would ask to keep them anyway).
    create_provider(
        actor=admin_user,
        name="lab",
        kind="ollama",
        default_model="llama3.1:8b",
        context_windows={"llama3.1:8b": 131072},
    )


@VIEWPORTS
def test_an_admin_adds_an_operator_finding_its_tools_with_the_picker(browse, tools, viewport) -> None:
    docker = set(Tool.objects.filter(server__name="docker").values_list("name", flat=True))
    assert len(docker) >= 3
    browser = browse(viewport)
    page = browser.log_in("alice")
    page.goto(browser.base_url + "/operators/")
    page.get_by_role("link", name=re.compile("Add an Operator")).first.click()

    page.get_by_label("Name").fill("disk checker")  # not a slug: the server refuses it
    page.get_by_label("Description").fill("Checks the disks of every host.")
    page.get_by_label("Provider").select_option(label="lab")
    picker = page.locator("#tool-picker")
    page.get_by_label("Find a tool").fill("docker")
    docker_tools = picker.locator(".tool-server[data-server=docker]")
    files = picker.locator(".tool-server[data-server=filesystem]")
    expect(files).to_contain_text("No tool of filesystem matches.")
    expect(docker_tools.locator("li:visible")).to_have_count(len(docker))
    docker_tools.get_by_label("Select all of docker").check()
    page.get_by_label("Find a tool").fill("")
    read_file = files.get_by_label("read_file", exact=True)
    expect(read_file).to_be_visible()
    read_file.check()
    expect(page.locator("#tools-chosen")).to_have_text(f"{len(docker) + 1} tools chosen")
    for box in picker.locator("label.inline-check").all()[:5]:  # each checkbox sits beside its label's text
        shape, tick = box.bounding_box(), box.locator("input").bounding_box()
        assert tick["x"] - shape["x"] < 8 and shape["x"] + shape["width"] <= viewport["width"], (shape, tick)
    assert page_width(page) <= viewport["width"]
    page.get_by_role("button", name="Save", exact=True).click()

    name = field(page, "name")
    expect(name.locator(".errorlist")).to_contain_text("Enter a valid “slug”")
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Name")).to_have_value("disk checker")
    expect(page.get_by_label("Description")).to_have_value("Checks the disks of every host.")
    ticked = picker.locator("input[name=tools]:checked")
    expect(ticked).to_have_count(len(docker) + 1)
    expect(page.locator("#tools-chosen")).to_have_text(f"{len(docker) + 1} tools chosen")
    expect(docker_tools.get_by_label("Select all of docker")).to_be_checked()
    assert page_width(page) <= viewport["width"]
    assert not Operator.objects.exists()

    page.get_by_label("Name").fill("disk-checker")
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_url(re.compile(r"/operators/$"))
    expect(page.locator(".messages")).to_contain_text("Saved disk-checker.")
    operator = Operator.objects.get(name="disk-checker")
    chosen = set(operator.tools.values_list("qualified_name", flat=True))
    assert chosen == {f"docker__{name}" for name in docker} | {"filesystem__read_file"}
    assert not browser.console_errors, browser.console_errors
