"""Plan mode in a real browser: a task given with "Plan first" at a desktop's width becomes a plan (the scripted
model, the session's worker) listed on the Approvals page; an approver opens its notification link on a phone,
through the login page, approves it with one step left out, and sees it applied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from operators.choices import OperatorJITMode, PlanStatus, RunStatus
from operators.models import Plan, Run
from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import DESKTOP, PHONE
from tests.fakes.llm import text, tool_call
from tests.operators.conftest import model, operator  # noqa: F401 - fixtures
from vigilus.choices import Role

# A browser sees the same pages on either database: the SQLite pass runs these.
pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

SHELL = "shell__run_command"
# Counts the messages htmx's ws extension has swapped in, from before the page's own scripts run.
COUNT_MESSAGES = """
window.liveMessages = 0;
document.addEventListener("htmx:wsAfterMessage", () => window.liveMessages++);
"""


def page_width(page: object) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def within(box: dict[str, float] | None, width: int) -> bool:
    return bool(box) and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_an_approver_on_a_phone_approves_a_plan_from_its_link_leaving_out_a_step(
    browse,
    celery_worker,
    operator,  # noqa: F811
    model,  # noqa: F811
    tmp_path: Path,
) -> None:
    bert = make_user("bert", Role.APPROVER)
    applied = tmp_path / "applied.log"
    commands = [f"echo {word} >> {applied}" for word in ("update", "upgrade", "restart")]
    model.script(
        *(tool_call(SHELL, {"command": command}) for command in commands),
        text("Update the package lists, upgrade, then restart nginx."),
        text("Updated and restarted nginx; the upgrade was left out."),
    )
    strict = operator(jit_mode=OperatorJITMode.STRICT)

    # At a desktop's width a person gives the task with "Plan first" ticked, then finds the plan on Approvals.
    desktop = browse(DESKTOP)
    desk = desktop.log_in("alice")
    desk.goto(desktop.base_url + "/tasks/")
    desk.fill("textarea[name=task]", "upgrade web1 and restart nginx")
    desk.select_option("select[name=operator]", label=strict.name)
    desk.get_by_label("Plan first").check()
    desk.click("button:has-text('Start')")
    desk.wait_for_url(re.compile(r"/runs/\d+/$"))
    run = Run.objects.get(pk=int(desk.url.rstrip("/").rsplit("/", 1)[1]))
    desk.evaluate("window.notReloaded = true")
    # The plan appears on the run page as the worker drafts it, and waits there for a decision, without a reload.
    expect(desk.locator("#plan .plan-status").first).to_have_text("Awaiting approval", timeout=60_000)
    expect(desk.locator("#plan .plan-step")).to_have_count(3)
    expect(desk.locator("#plan").get_by_role("button", name="Approve")).to_be_visible()
    assert desk.evaluate("window.notReloaded === true") and page_width(desk) <= DESKTOP["width"]
    assert Run.objects.get(pk=run.pk).status == RunStatus.AWAITING_PLAN_APPROVAL
    assert run.plan_mode and not applied.exists()  # planned, not run
    desk.goto(desktop.base_url + "/approvals/")
    card = desk.locator("#pending-plans article.plan-card")
    expect(card).to_have_count(1)
    expect(card).to_contain_text("proposes a plan of 3 steps")
    expect(card.locator(".command")).to_have_text([f"$ {command}" for command in commands])
    expect(card.get_by_role("link", name="Review and decide")).to_have_attribute("href", f"/runs/{run.pk}/#plan")
    expect(desk.locator("#approval-count")).to_have_text("1")
    assert page_width(desk) <= DESKTOP["width"]

    # The notification's link, opened on a phone by someone not logged in: the login page leads back to the run.
    phone = browse(PHONE)
    phone.context.add_init_script(COUNT_MESSAGES)
    page = phone.open(f"/runs/{run.pk}/#plan")
    page.wait_for_url(re.compile(r"/login/\?next="))
    page.fill("input[name=username]", "bert")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/runs/{run.pk}/"))
    assert page.url.endswith(f"/runs/{run.pk}/#plan"), page.url
    # The run's socket sends the page's live parts as they stand once it opens: wait for that swap to be done.
    page.wait_for_function("window.liveMessages >= 1")
    plan = page.locator("#plan")
    expect(plan.locator(".plan-status").first).to_have_text("Awaiting approval")
    expect(plan.locator(".plan-step")).to_have_count(3)
    expect(plan.locator(".command")).to_have_text([f"$ {command}" for command in commands])
    expect(plan).to_contain_text("left to decide")
    approve, reject = plan.get_by_role("button", name="Approve"), plan.get_by_role("button", name="Reject")
    for control in (approve, reject, plan.get_by_label("Run step 2")):
        assert within(control.bounding_box(), PHONE["width"]), control.bounding_box()
    assert approve.bounding_box()["width"] >= PHONE["width"] * 0.7  # full width, thumb-sized
    assert page_width(page) <= PHONE["width"]

    plan.get_by_label("Run step 2").uncheck()
    approve.click()

    expect(plan.locator(".plan-decided")).to_contain_text("Approved by bert")
    expect(plan.locator(".plan-status").first).to_have_text("Applied", timeout=30_000)
    expect(plan.locator(".plan-step .step-status")).to_have_text(["Succeeded", "Skipped", "Succeeded"])
    expect(page.locator("#transcript > p > strong").first).to_have_text("Completed", timeout=30_000)
    expect(page.locator("#transcript .answer")).to_contain_text("the upgrade was left out")
    assert applied.read_text().split() == ["update", "restart"]
    saved = Plan.objects.get(run=run)
    assert saved.status == PlanStatus.APPLIED and saved.decided_by == bert
    assert not phone.console_errors, phone.console_errors

    # Once nothing waits, the Approvals page no longer shows the plan (pushed live, no reload).
    expect(desk.locator("#pending-plans")).to_be_hidden()
    expect(desk.locator("#approval-count")).to_have_text("0")
