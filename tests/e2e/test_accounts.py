"""Accounts in the browser: change your own password (old one required, errors beside their fields), and an admin
gives a person a new password that is shown once and lets them in."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, make_user
from tests.e2e.conftest import DESKTOP, PHONE
from vigilus.choices import Role

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a-fresh-long-passphrase-31"


def test_a_person_changes_their_own_password_on_a_phone(browse) -> None:
    make_user("alice", Role.ADMIN)
    browser = browse(PHONE)
    page = browser.log_in("alice")
    page.goto(browser.base_url + "/settings/")
    page.get_by_role("link", name="Change your password").click()

    page.fill("input[name=old_password]", "not-my-password")
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    old = page.locator("input[name=old_password]")
    assert old.get_attribute("aria-invalid") == "true"
    error = page.locator("div", has=old).locator(".errorlist")  # the error sits beside its own field
    assert "old password was entered incorrectly" in error.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.fill("input[name=old_password]", PASSWORD)
    page.fill("input[name=new_password1]", NEW_PASSWORD)
    page.fill("input[name=new_password2]", NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url("**/settings/")
    assert "Your password was changed" in page.content()

    again = browse(DESKTOP)
    again.log_in("alice", NEW_PASSWORD)
    assert again.pages[0].url.rstrip("/") == browser.base_url
    assert not browser.console_errors and not again.console_errors


def test_an_admin_gives_a_person_a_new_password_shown_once(browse) -> None:
    from audit.models import AuditEntry

    make_user("alice", Role.ADMIN)
    make_user("bert", Role.APPROVER)
    admin = browse(DESKTOP)
    page = admin.log_in("alice")
    page.goto(admin.base_url + "/settings/")
    page.locator("tr", has_text="bert").get_by_role("button", name="New password").click()
    shown = page.locator("#new-password pre").inner_text().strip()
    assert len(shown) >= 16
    page.goto(admin.base_url + "/settings/")
    assert shown not in page.content(), "the new password is shown once"

    bert = browse(PHONE)
    bert.log_in("bert", shown)
    assert bert.pages[0].url.rstrip("/") == admin.base_url
    entry = AuditEntry.objects.get(event="user.password_set")
    assert (entry.actor, entry.target) == ("alice", "bert")
