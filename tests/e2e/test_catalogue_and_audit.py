"""The Tools catalogue and the Audit page in a real browser, on a phone (390 px) and a desktop (1440 px): they fit
the screen, every control is named by a label, the catalogue is one line per tool on a desktop and stacked on a
phone, its search narrows it without a reload, and Audit names the time zone its times are in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from audit.services import record
from tests.conftest import make_user
from tests.e2e.conftest import DESKTOP, PHONE
from tools.models import Tool
from tools.services import discover_all
from vigilus.choices import Role

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

VIEWPORTS = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
# The form controls in the page's content that no <label> names.
UNLABELLED = """Array.from(document.querySelectorAll("main select, main textarea, main input:not([type=hidden])"))
    .filter(control => control.labels.length === 0).map(control => control.outerHTML)"""


def page_width(page: object) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.fixture
def tools() -> None:
    (Path(settings.DATA_DIR) / "mcp.json").unlink(missing_ok=True)
    discover_all()


@VIEWPORTS
def test_the_tools_catalogue_fits_names_every_control_and_searches_without_a_reload(browse, tools, viewport) -> None:
    make_user("alice", Role.ADMIN)
    wireguard = Tool.objects.filter(server__name="wireguard").count()
    browser = browse(viewport)
    page = browser.log_in("alice")
    page.goto(browser.base_url + "/tools/")

    assert page_width(page) <= viewport["width"]
    assert page.evaluate(UNLABELLED) == []
    rows = page.locator(".tool-row")
    expect(rows).to_have_count(Tool.objects.count())
    for row in rows.all()[:8]:
        name, description = row.locator(".tool-name").bounding_box(), row.locator(".tool-description").bounding_box()
        assert row.bounding_box()["x"] + row.bounding_box()["width"] <= viewport["width"]
        if viewport is DESKTOP:  # one line per tool: name, intent and description side by side
            assert abs(description["y"] - name["y"]) < 8 and description["x"] > name["x"] + name["width"]
        else:  # stacked: the description under the name
            assert description["y"] >= name["y"] + name["height"] - 1
    # The intent select of a row is named by its tool (a screen reader says which tool it sets).
    expect(page.get_by_label("Intent of filesystem__read_file", exact=True)).to_have_value("")

    page.evaluate("window.notReloaded = true")
    page.get_by_label("Search:", exact=True).fill("wireguard")
    expect(rows).to_have_count(wireguard)
    page.wait_for_url(re.compile(r"[?&]q=wireguard"))
    page.get_by_label("Intent:", exact=True).select_option("read")
    expect(rows).to_have_count(Tool.objects.filter(server__name="wireguard", annotations__readOnlyHint=True).count())
    for chip in rows.locator(".intent").all():
        expect(chip).to_have_text("Read")
    assert page.evaluate("window.notReloaded === true")
    assert page_width(page) <= viewport["width"]
    assert not browser.console_errors, browser.console_errors


@VIEWPORTS
def test_the_audit_page_fits_labels_its_filters_and_names_the_time_zone(browse, viewport) -> None:
    make_user("alice", Role.ADMIN)
    for run in range(1, 6):
        # Long unbroken names: the table must wrap them, not widen the page.
        common = {"actor": "nightly-maintenance-operator", "actor_kind": "operator", "run": run, "intent": "write"}
        record(
            "tool_call.decision", tool="filesystem__list_directory_recursively_with_sizes", decision="denied", **common
        )
        record("tool.definition_changed_since_the_last_review", tool="wireguard__generate_client_config")
    browser = browse(viewport)
    page = browser.log_in("alice")
    page.goto(browser.base_url + "/audit/")

    assert page_width(page) <= viewport["width"]
    table = page.locator("#entries table").bounding_box()
    assert table["x"] >= 0 and table["x"] + table["width"] <= viewport["width"]
    assert page.evaluate(UNLABELLED) == []
    expect(page.get_by_label("From (UTC)")).to_have_attribute("type", "datetime-local")
    first = page.locator("#entries tbody tr").first
    expect(first.locator("time")).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    if viewport is DESKTOP:
        expect(page.locator("#entries thead")).to_contain_text("Time (UTC)")
    else:  # stacked rows: each cell says what it is
        zone = first.locator("td[data-label='Time (UTC)']")
        assert zone.evaluate("cell => getComputedStyle(cell, '::before').content") == '"Time (UTC)"'

    page.get_by_label("Operator or person").fill("nightly-maintenance-operator")
    page.get_by_label("Decision").select_option("denied")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#entries tbody tr")).to_have_count(5)
    assert page_width(page) <= viewport["width"]
    assert not browser.console_errors, browser.console_errors
