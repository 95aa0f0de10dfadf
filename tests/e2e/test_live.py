"""Live updates in a real browser: strict mode's main flow across two people's browsers without a reload, pages
that catch up on what they missed while their socket was down, and sockets that stay open."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import expect

from jit import services as jit_services
from jit.models import AccessRequest
from operators.choices import OperatorJITMode, RunStatus
from operators.models import Run
from operators.services import submit_task
from tests.conftest import make_user, process_env, wait_for
from tests.e2e.conftest import DESKTOP, PHONE, Daphne
from tests.fakes.llm import text, tool_call
from tests.operators.conftest import model, operator  # noqa: F401 - fixtures
from vigilus.choices import Role

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

SHELL = "shell__run_command"
# Long enough for a socket to outlive every timeout that once dropped it (a 5 s redis-py read timeout did).
QUIET_SECONDS = 65
# The ws extension retries with full jitter, up to 30 s between tries once the server was gone a while.
RECONNECT_MS = 45_000

# Counts each page's socket opens and closes from before its first script runs (htmx's ws extension events).
COUNT_SOCKET_EVENTS = """
window.sockets = {opened: 0, closed: 0};
document.addEventListener("htmx:wsOpen", () => window.sockets.opened++);
document.addEventListener("htmx:wsClose", () => window.sockets.closed++);
"""
# A page that reloads loses this mark: its absence means the page was reloaded.
MARK_PAGE = "window.notReloaded = true"


def watch_sockets(browsing: object) -> None:
    browsing.context.add_init_script(COUNT_SOCKET_EVENTS)


def wait_for_sockets(page: object, opened: int) -> None:
    page.wait_for_function(f"window.sockets && window.sockets.opened >= {opened}")


def was_not_reloaded(page: object) -> bool:
    return page.evaluate("window.notReloaded === true")


def status_of(page: object) -> object:
    """The run's status as the run page shows it."""
    return page.locator("#transcript > p > strong").first


def beside_the_browser(action: Callable[..., object], *args: object, **kwargs: object) -> object:
    """Calls a service from another thread: Playwright's event loop runs in the test's, and a service that pushes
    a live update calls async_to_sync, which refuses to run inside a running loop."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(action, *args, **kwargs).result()


def server_errors(log: Path, since: int) -> list[str]:
    """Lines of a daphne log written after byte `since` that report an error."""
    with open(log, "rb") as file:
        file.seek(since)
        lines = file.read().decode(errors="replace").splitlines()
    return [line for line in lines if "Traceback" in line or " ERROR " in line]


@pytest.fixture
def restartable_dashboard(django_db_blocker: object, tmp_path: Path) -> Iterator[Daphne]:
    """A dashboard of this test's own, which it stops and starts again on the same port."""
    with django_db_blocker.unblock():
        server = Daphne(process_env(), tmp_path / "daphne.log")
    server.start()
    yield server
    server.stop()


def test_an_approver_on_a_phone_approves_what_a_run_asks_and_the_run_page_completes(
    browse,
    celery_worker,
    operator,  # noqa: F811
    model,  # noqa: F811
) -> None:
    make_user("bert", Role.APPROVER)
    model.script(tool_call(SHELL, {"command": "systemctl restart nginx.service"}), text("nginx restarted"))
    strict = operator(jit_mode=OperatorJITMode.STRICT)

    approver = browse(PHONE)
    watch_sockets(approver)
    approvals = approver.log_in("bert")
    approvals.goto(approver.base_url + "/approvals/")
    approvals.evaluate(MARK_PAGE)
    expect(approvals.locator("#pending-requests")).to_contain_text("Nothing is waiting")
    wait_for_sockets(approvals, opened=1)

    submitter = browse(DESKTOP)
    watch_sockets(submitter)
    page = submitter.log_in("alice")
    page.goto(submitter.base_url + "/tasks/")
    page.fill("textarea[name=task]", "restart the web server")
    page.select_option("select[name=operator]", label=strict.name)
    page.click("button:has-text('Start')")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(pk=int(page.url.rstrip("/").rsplit("/", 1)[1]))
    page.evaluate(MARK_PAGE)
    wait_for_sockets(page, opened=2)  # the dashboard's and the run's

    card = approvals.locator("article.request")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".command")).to_have_text("$ systemctl restart nginx.service")
    expect(approvals.locator("#approval-count")).to_have_text("1")
    expect(status_of(page)).to_have_text("Awaiting approval", timeout=30_000)

    expect(page.get_by_role("button", name="Cancel")).to_be_visible()  # a parked run can still be stopped
    card.get_by_role("button", name="Approve").click()

    expect(status_of(page)).to_have_text("Completed", timeout=30_000)
    expect(status_of(page)).to_have_class("ok")  # every call ran: plain green
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)  # gone with the live push, no reload
    expect(page.locator("#transcript .answer")).to_contain_text("nginx restarted")
    # The person who gave the task hears it finished, wherever they are in the dashboard; the approver does not.
    notice = page.locator("#live-notices .notice")
    expect(notice).to_have_text(f"Run #{run.pk} ({strict.name}) completed")
    expect(notice.get_by_role("link")).to_have_attribute("href", f"/runs/{run.pk}/")
    expect(approvals.locator("#live-notices .notice")).to_have_count(0)
    expect(approvals.locator("#pending-requests")).to_contain_text("Nothing is waiting")
    expect(approvals.locator("#approval-count")).to_have_text("0")
    assert was_not_reloaded(page) and was_not_reloaded(approvals)
    assert run.started_by.username == "alice"
    assert not approver.console_errors, approver.console_errors

    page.goto(f"{submitter.base_url}/audit/?run={run.pk}")
    rows = page.locator("#entries tbody tr")
    decision = rows.filter(has_text="bert").filter(has_text="approved")
    outcome = rows.filter(has_text=SHELL).filter(has_text="succeeded")
    expect(decision).to_have_count(1)
    expect(outcome).to_have_count(1)


def test_pages_catch_up_on_what_happened_while_their_socket_was_down(
    browse,
    restartable_dashboard,
    celery_worker,
    operator,  # noqa: F811
    model,  # noqa: F811
) -> None:
    """The server is gone for a while (a restart): a run finishes and another asks for approval meanwhile. When the
    sockets are back the pages show both, without a reload."""
    bert = make_user("bert", Role.APPROVER)
    model.script(
        tool_call(SHELL, {"command": "systemctl restart nginx.service"}),
        text("nginx restarted"),
        tool_call(SHELL, {"command": "systemctl restart postgresql.service"}),
        text("postgresql restarted"),
    )
    strict = operator(jit_mode=OperatorJITMode.STRICT)
    first = submit_task("restart nginx", operator=strict)
    wait_for(lambda: Run.objects.get(pk=first.pk).status == RunStatus.AWAITING_APPROVAL, what="the first run to park")
    server = restartable_dashboard.url

    approver = browse(PHONE, server=server)
    watch_sockets(approver)
    approvals = approver.log_in("bert")
    approvals.goto(server + "/approvals/")
    watcher = browse(DESKTOP, server=server)
    watch_sockets(watcher)
    run_page = watcher.log_in("alice")
    run_page.goto(f"{server}/runs/{first.pk}/")
    for page, sockets in ((approvals, 1), (run_page, 2)):
        page.evaluate(MARK_PAGE)
        wait_for_sockets(page, opened=sockets)
    expect(approvals.locator("article.request")).to_have_count(1)
    expect(approvals.locator("#approval-count")).to_have_text("1")
    expect(status_of(run_page)).to_have_text("Awaiting approval")

    restartable_dashboard.stop()
    for page, sockets in ((approvals, 1), (run_page, 2)):
        page.wait_for_function(f"window.sockets.closed >= {sockets}")
    beside_the_browser(jit_services.approve, AccessRequest.objects.get(run_id=first.pk).pk, actor=bert)
    wait_for(lambda: Run.objects.get(pk=first.pk).status == RunStatus.COMPLETED, what="the first run to complete")
    second = beside_the_browser(submit_task, "restart postgresql", operator=strict)
    wait_for(lambda: Run.objects.get(pk=second.pk).status == RunStatus.AWAITING_APPROVAL, what="the second to park")
    restartable_dashboard.start()

    expect(status_of(run_page)).to_have_text("Completed", timeout=RECONNECT_MS)
    card = approvals.locator("article.request")
    expect(card.locator(".command")).to_have_text("$ systemctl restart postgresql.service", timeout=RECONNECT_MS)
    expect(card).to_have_count(1)
    expect(approvals.locator("#approval-count")).to_have_text("1")
    expect(run_page.locator("#approval-count")).to_have_text("1", timeout=RECONNECT_MS)
    assert was_not_reloaded(approvals) and was_not_reloaded(run_page)
    assert not server_errors(restartable_dashboard.log, since=0)


def test_a_dashboard_socket_stays_open_for_a_minute_without_a_server_error(
    browse, dashboard_server, admin_user
) -> None:
    log_start = dashboard_server.log.stat().st_size
    run = Run.objects.create(task="look around", status=RunStatus.COMPLETED, answer="all quiet")
    browser = browse(DESKTOP)
    watch_sockets(browser)
    approvals = browser.log_in("alice")
    approvals.goto(browser.base_url + "/approvals/")
    run_page = browser.new_page()
    run_page.goto(f"{browser.base_url}/runs/{run.pk}/")
    wait_for_sockets(approvals, opened=1)
    wait_for_sockets(run_page, opened=2)

    run_page.wait_for_timeout(QUIET_SECONDS * 1000)

    for page, sockets in ((approvals, 1), (run_page, 2)):
        assert page.evaluate("window.sockets") == {"opened": sockets, "closed": 0}, page.url
    assert not server_errors(dashboard_server.log, since=log_start)
    assert not browser.console_errors, browser.console_errors
