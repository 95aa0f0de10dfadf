"""A live push goes to everyone in a group, whatever page each has open: an approver reading a run page or the
Overview is sent the pending list too, which those pages do not show. The page takes what it shows (the nav's
count) and drops the rest without a console error (htmx would log oobErrorNoTarget #pending-requests)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from operators.choices import OperatorJITMode, RunStatus
from operators.models import Run
from operators.services import submit_task
from tests.conftest import wait_for
from tests.e2e.conftest import DESKTOP
from tests.e2e.test_live import beside_the_browser, wait_for_sockets, watch_sockets
from tests.fakes.llm import text, tool_call
from tests.operators.conftest import model, operator  # noqa: F401 - fixtures

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

SHELL = "shell__run_command"


def test_pages_without_the_pending_list_take_the_count_and_log_no_console_error(
    browse,
    celery_worker,
    operator,  # noqa: F811
    model,  # noqa: F811
) -> None:
    model.script(tool_call(SHELL, {"command": "systemctl restart nginx.service"}), text("nginx restarted"))
    strict = operator(jit_mode=OperatorJITMode.STRICT)
    earlier = Run.objects.create(task="look around", status=RunStatus.COMPLETED, answer="all quiet")
    browser = browse(DESKTOP)
    watch_sockets(browser)
    browser.log_in("alice")  # an admin: an approver too
    pages = {}
    # The run page has two sockets (the dashboard's and the run's); the others one.
    for path, sockets in ((f"/runs/{earlier.pk}/", 2), ("/", 1), ("/tools/", 1), ("/approvals/", 1)):
        page = browser.new_page()
        page.goto(browser.base_url + path)
        wait_for_sockets(page, opened=sockets)
        pages[path] = page

    run = beside_the_browser(submit_task, "restart the web server", operator=strict)
    wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_APPROVAL, what="the run to park")

    for page in pages.values():
        expect(page.locator("#approval-count")).to_have_text("1", timeout=30_000)
    card = pages["/approvals/"].locator("article.request")
    expect(card).to_have_count(1)  # the page that shows the list still gets it
    expect(card.locator(".command")).to_have_text("$ systemctl restart nginx.service")
    expect(pages["/"].locator("#pending-requests")).to_have_count(0)
    assert not browser.console_errors, browser.console_errors
