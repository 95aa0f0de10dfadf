"""Every page of the dashboard at a phone's width (390 px) and a desktop's (1440 px): no horizontal scroll of the
page, no console errors; and the approval card — strict mode's whole promise — usable on the phone."""

from __future__ import annotations

import re

import pytest

from jit.models import AccessRequest
from operators.choices import OperatorJITMode, RunStatus
from operators.models import Run
from operators.services import submit_task
from tests.conftest import make_user, wait_for
from tests.e2e.conftest import DESKTOP, PHONE
from tests.fakes.llm import text, tool_call
from tests.operators.conftest import model, operator  # noqa: F401 - fixtures
from vigilus.choices import Role

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

SHELL = "shell__run_command"
LONG_COMMAND = "apt-get -o Dpkg::Options::=--force-confold dist-upgrade --yes && systemctl restart nginx.service " * 2


@pytest.fixture
def pending_request(celery_worker: str, operator, model) -> AccessRequest:  # noqa: F811
    """A strict Operator's run, parked on a long shell command that waits for a person."""
    model.script(tool_call(SHELL, {"command": LONG_COMMAND.strip()}), text("upgraded"))
    run = submit_task("upgrade the web server", operator=operator(jit_mode=OperatorJITMode.STRICT))
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, what="the run to park")
    return AccessRequest.objects.get(run_id=run.pk)


def page_width(page: object) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_page_scrolls_sideways_or_logs_a_console_error(browse, pending_request, viewport) -> None:
    browser = browse(viewport)
    page = browser.log_in("alice")
    paths = ["/", *page.eval_on_selector_all("header nav a", "links => links.map(a => a.pathname)")]
    paths.append(f"/runs/{pending_request.run_id}/")
    assert len(paths) >= 10, paths
    too_wide = {}
    for path in paths:
        page.goto(browser.base_url + path)
        page.wait_for_load_state("networkidle")
        if page_width(page) > viewport["width"]:
            too_wide[path] = page_width(page)
    assert not too_wide, f"pages wider than {viewport['width']} px: {too_wide}"
    assert not browser.console_errors, browser.console_errors


def test_the_approval_card_on_a_phone_shows_the_whole_call_and_both_decisions(browse, pending_request) -> None:
    make_user("bert", Role.APPROVER)
    browser = browse(PHONE)
    page = browser.log_in("bert")
    page.goto(browser.base_url + "/approvals/")
    card = page.locator(f"#request-{pending_request.pk}")
    command = card.locator(".command")
    assert re.sub(r"\s+", " ", command.inner_text()).strip() == f"$ {LONG_COMMAND.strip()}"
    for control in (card.get_by_role("button", name="Approve"), card.get_by_role("button", name="Deny")):
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
        assert box["height"] >= 40, f"not touch-sized: {box}"
    for box in (command.bounding_box(), card.bounding_box()):
        assert box["x"] + box["width"] <= PHONE["width"], box
    assert card.locator(".intent").inner_text().strip().lower() == "exec"
    assert re.search(r"\d+ min( \d+ s)? left|\d+ s left", card.inner_text()), card.inner_text()
