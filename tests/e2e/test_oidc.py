"""Single sign-on in the browser: the real redirect flow between the dashboard (daphne, configured from the
environment as people configure it) and a real OpenID provider (oidc-provider on 127.0.0.1, tests/fakes/oidc.py).
Forged and misdirected ID tokens are refused in tests/vigilus/test_oidc.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User

from tests.conftest import process_env
from tests.e2e.conftest import DESKTOP, PHONE, Daphne
from tests.fakes.oidc import Client as IdpClient
from tests.fakes.oidc import OidcProvider, Person, ProviderUnavailable, running_provider
from vigilus.choices import Role
from vigilus.services import role_of

pytestmark = [pytest.mark.integration, pytest.mark.engine_independent, pytest.mark.django_db(transaction=True)]

IDP_PASSWORD = "idp-password-7"
PEOPLE = {
    "alice": Person(IDP_PASSWORD, {"email": "alice@lab.example", "groups": ["lab-admins"]}),
    "carol": Person(IDP_PASSWORD, {"email": "carol@lab.example", "groups": ["family"]}),
}


@pytest.fixture(scope="module")
def sso_dashboard(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Daphne, OidcProvider]]:
    """A dashboard of its own whose environment names the provider, and the provider, which knows its URLs."""
    with django_db_blocker.unblock():
        server = Daphne(process_env(), tmp_path_factory.mktemp("daphne-sso") / "daphne.log")
    client = IdpClient("vigilus", [f"{server.url}/oidc/callback/"], [f"{server.url}/login/"])
    try:
        with running_provider([client], PEOPLE) as idp:
            server.env.update(
                VIGILUS_OIDC_ISSUER=idp.issuer,
                VIGILUS_OIDC_CLIENT_ID=client.client_id,
                VIGILUS_OIDC_CLIENT_SECRET=client.client_secret,
                VIGILUS_OIDC_ROLES="lab-admins=admin,lab-approvers=approver,lab=viewer",
                VIGILUS_OIDC_NAME="Test IdP",
            )
            server.start()
            try:
                yield server, idp
            finally:
                server.stop()
    except ProviderUnavailable as exc:
        pytest.skip(str(exc))


def sign_in_at_the_provider(page: object, username: str) -> None:
    page.get_by_role("link", name="Sign in with Test IdP").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(IDP_PASSWORD)
    page.get_by_role("button", name="Sign in to the test IdP").click()


def test_a_notification_link_leads_through_the_provider_to_the_run_and_creates_the_user(browse, sso_dashboard) -> None:
    from operators.models import Run

    server, _ = sso_dashboard
    run = Run.objects.create(task="why is the nas container restarting?")
    browser = browse(PHONE, server=server.url)
    page = browser.open(f"/runs/{run.pk}/#plan")  # as a notification links to a plan
    page.wait_for_url("**/login/**")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{server.url}/runs/{run.pk}/#plan")
    assert "why is the nas container restarting?" in page.content()
    assert page.locator("header .who").inner_text() == "alice"

    alice = User.objects.get(username="alice")
    assert role_of(alice) == Role.ADMIN and alice.email == "alice@lab.example"
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not browser.console_errors, browser.console_errors


def test_a_person_in_no_mapped_group_is_refused(browse, sso_dashboard) -> None:
    server, _ = sso_dashboard
    browser = browse(PHONE, server=server.url)
    page = browser.open("/login/")
    sign_in_at_the_provider(page, "carol")
    page.wait_for_url("**/oidc/callback/**")
    refusal = page.locator("#sso-refused")
    assert refusal.get_by_role("heading").inner_text() == "No Vigilus role"
    text = refusal.inner_text()
    assert "groups claim" in text and "lab-admins → Admin" in text and "Test IdP sent family." in text
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert not User.objects.filter(username="carol").exists()

    page.get_by_role("link", name="Back to the login page").click()
    page.wait_for_url("**/login/")
    browser.console_errors.clear()  # the refusal page's own 403
    page.goto(server.url + "/")
    assert "/login/" in page.url, "no session was made"


def test_logout_ends_the_session_at_the_provider_too(browse, sso_dashboard) -> None:
    server, _ = sso_dashboard
    browser = browse(DESKTOP, server=server.url)
    page = browser.open("/login/")
    sign_in_at_the_provider(page, "alice")
    page.wait_for_url(f"{server.url}/")

    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Yes, sign me out").click()  # the provider's own question
    page.wait_for_url(f"{server.url}/login/")
    page.goto(server.url + "/")
    assert "/login/" in page.url

    page.get_by_role("link", name="Sign in with Test IdP").click()
    assert page.get_by_label("Password").is_visible(), "the provider asks for the password again"
    assert not browser.console_errors, browser.console_errors
