"""Single sign-on against a real OpenID provider (oidc-provider on 127.0.0.1, tests/fakes/oidc.py), the redirect flow
driven over HTTP: the dashboard through Django's test client, the provider's sign-in page with requests. The browser
walks the same flow in tests/e2e/test_oidc.py."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEntry
from tests.conftest import PASSWORD, ROOT, make_user
from tests.fakes.oidc import Client as IdpClient
from tests.fakes.oidc import OidcProvider, Person, ProviderUnavailable, running_provider, sign_in_at_provider
from tests.ports import free_port
from vigilus.choices import Role
from vigilus.models import SingleSignOnIdentity
from vigilus.oidc import provider as provider_metadata
from vigilus.oidc.backend import OidcBackend
from vigilus.oidc.config import check_settings, parse_role_map
from vigilus.services import role_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

CALLBACK = "http://testserver/oidc/callback/"
AFTER_LOGOUT = "http://testserver/login/"
OTHER_APP_CALLBACK = "http://127.0.0.1:9/callback"
ROLES = {"lab-admins": "admin", "lab-approvers": "approver", "lab": "viewer"}
IDP_PASSWORD = "idp-password-7"
PEOPLE = {
    "alice": Person(
        IDP_PASSWORD, {"email": "alice@lab.example", "given_name": "Alice", "groups": ["lab-admins", "lab"]}
    ),
    "bert": Person(IDP_PASSWORD, {"email": "bert@lab.example", "groups": ["lab-approvers"]}),
    "carol": Person(IDP_PASSWORD, {"email": "carol@lab.example", "groups": ["family", "media"]}),
    # Someone whose provider account (sub "mallory") is named like Vigilus's first admin.
    "mallory": Person(
        IDP_PASSWORD, {"preferred_username": "admin", "email": "mallory@evil.example", "groups": ["lab"]}
    ),
}
BACKENDS = ["django.contrib.auth.backends.ModelBackend", "vigilus.oidc.backend.OidcBackend"]


@contextmanager
def provider_or_skip(**kwargs: Any) -> Iterator[OidcProvider]:
    clients = [
        IdpClient("vigilus", [CALLBACK], [AFTER_LOGOUT]),
        IdpClient("other-app", [OTHER_APP_CALLBACK]),
    ]
    try:
        with running_provider(clients, PEOPLE, **kwargs) as started:
            yield started
    except ProviderUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def idp() -> Iterator[OidcProvider]:
    with provider_or_skip() as started:
        yield started


def configure(settings: Any, idp: OidcProvider, **more: Any) -> None:
    provider_metadata.forget()
    settings.OIDC_ISSUER = idp.issuer
    settings.OIDC_CLIENT_ID = "vigilus"
    settings.OIDC_CLIENT_SECRET = idp.client("vigilus").client_secret
    settings.OIDC_ROLES = ROLES
    settings.OIDC_NAME = "Test IdP"
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    for name, value in more.items():
        setattr(settings, name, value)


@pytest.fixture
def sso(idp: OidcProvider, settings: Any) -> OidcProvider:
    configure(settings, idp)
    idp.set_people(PEOPLE)
    return idp


def start(client: Client, next_url: str = "") -> str:
    """Ask the dashboard to sign in; returns the provider URL it sends the browser to."""
    answer = client.get("/oidc/authenticate/" + (f"?next={quote(next_url, safe='')}" if next_url else ""))
    assert answer.status_code == 302, answer.content[:500]
    return answer["Location"]


def come_back(client: Client, back: str) -> Any:
    assert back.startswith(CALLBACK), back
    parts = urlsplit(back)
    return client.get(parts.path, parse_qs(parts.query))


def sign_in(client: Client, username: str, password: str = IDP_PASSWORD, next_url: str = "") -> Any:
    """The whole redirect flow; returns the dashboard's answer at the callback."""
    back = sign_in_at_provider(requests.Session(), start(client, next_url), username, password)
    return come_back(client, back)


def logged_in_as(client: Client) -> str | None:
    from django.contrib.auth import SESSION_KEY

    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id).username if user_id else None


def users(*args: str) -> str:
    """`vigilus users ARGS`; returns what it printed."""
    out = StringIO()
    call_command("users", *args, stdout=out)
    return out.getvalue()


def events(event: str) -> list[tuple[str, str]]:
    return list(AuditEntry.objects.filter(event=event).order_by("sequence").values_list("actor", "target"))


# --- the login page ------------------------------------------------------------------------------------------------


def test_the_login_page_offers_the_provider_by_name_and_keeps_next(sso: OidcProvider) -> None:
    page = Client().get("/login/?next=/runs/7/").content.decode()
    assert "Sign in with Test IdP" in page
    assert 'href="/oidc/authenticate/?next=%2Fruns%2F7%2F"' in page
    assert 'type="password"' in page  # password login stays on unless switched off
    assert sso.client("vigilus").client_secret not in page


def test_without_single_sign_on_the_login_page_has_no_button_and_the_flow_answers_404(db: None) -> None:
    page = Client().get("/login/").content.decode()
    assert "Sign in with" not in page and 'type="password"' in page
    assert Client().get("/oidc/authenticate/").status_code == 404
    assert Client().get("/oidc/callback/?code=x&state=y").status_code == 404


# --- first sign-in, roles, audit -----------------------------------------------------------------------------------


def test_first_sign_in_creates_the_user_with_the_mapped_role_and_is_audited(sso: OidcProvider) -> None:
    client = Client()
    answer = sign_in(client, "alice")
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert logged_in_as(client) == "alice"
    alice = User.objects.get(username="alice")
    assert role_of(alice) == Role.ADMIN  # the strongest of lab-admins and lab
    assert (alice.email, alice.first_name) == ("alice@lab.example", "Alice")
    assert not alice.has_usable_password()
    assert events("user.created") == [("system", "alice")]
    assert AuditEntry.objects.get(event="user.created").details["role"] == "admin"
    assert events("user.login") == [("alice", "")]
    assert client.get("/").status_code == 200


def test_the_role_follows_the_groups_at_every_sign_in(sso: OidcProvider) -> None:
    sign_in(Client(), "bert")
    assert role_of(User.objects.get(username="bert")) == Role.APPROVER
    sso.set_people({**PEOPLE, "bert": Person(IDP_PASSWORD, {"groups": ["lab"]})})
    client = Client()
    assert sign_in(client, "bert").status_code == 302
    assert role_of(User.objects.get(username="bert")) == Role.VIEWER
    assert AuditEntry.objects.get(event="user.role_set").target == "bert"
    assert User.objects.filter(username="bert").count() == 1
    assert sign_in(Client(), "bert").status_code == 302
    assert AuditEntry.objects.filter(event="user.role_set").count() == 1, "an unchanged role is not rewritten"


# --- who is who: the identity (issuer + sub), never the username ----------------------------------------------------


def linked_subjects(username: str) -> list[str]:
    return list(SingleSignOnIdentity.objects.filter(user__username=username).values_list("subject", flat=True))


def test_a_provider_account_named_like_a_local_admin_is_refused_and_the_admin_is_untouched(
    sso: OidcProvider,
) -> None:
    make_user("admin", Role.ADMIN)
    client = Client()
    answer = sign_in(client, "mallory")  # preferred_username "admin"
    assert answer.status_code == 403 and logged_in_as(client) is None
    page = answer.content.decode()
    assert "A local account has this name" in page
    assert "<code>vigilus users link-sso admin --subject mallory</code>" in page
    assert "<code>VIGILUS_OIDC_LINK_EXISTING=true</code>" in page

    admin = User.objects.get(username="admin")
    assert role_of(admin) == Role.ADMIN and admin.email == "" and admin.check_password(PASSWORD)
    assert linked_subjects("admin") == [] and User.objects.count() == 1
    failed = AuditEntry.objects.get(event="user.login_failed")
    assert (failed.actor, failed.details["subject"]) == ("admin", "mallory")
    assert "already exists" in failed.reason
    assert not AuditEntry.objects.filter(event__in=["user.sso_linked", "user.role_set", "user.login"]).exists()


def test_with_link_existing_a_local_account_is_linked_by_username_once(sso: OidcProvider, settings: Any) -> None:
    settings.OIDC_LINK_EXISTING = True
    make_user("bert", Role.VIEWER)
    client = Client()
    sign_in(client, "bert")
    assert logged_in_as(client) == "bert" and User.objects.filter(username__iexact="bert").count() == 1
    bert = User.objects.get(username="bert")
    assert role_of(bert) == Role.APPROVER
    assert bert.check_password(PASSWORD), "a password set in Vigilus stays (for when the provider is down)"
    assert linked_subjects("bert") == ["bert"]
    linked = AuditEntry.objects.get(event="user.sso_linked")
    assert (linked.actor, linked.target, linked.details["linked_by"]) == ("system", "bert", "username")

    # Linked now: another provider account that calls itself bert does not get the account, even with the setting.
    sso.set_people({**PEOPLE, "impostor": Person(IDP_PASSWORD, {"preferred_username": "bert", "groups": ["lab"]})})
    answer = sign_in(Client(), "impostor")
    assert answer.status_code == 403 and "linked to someone else" in answer.content.decode()
    settings.OIDC_LINK_EXISTING = False
    again = Client()
    sign_in(again, "bert")
    assert logged_in_as(again) == "bert", "the link holds without the setting"
    assert linked_subjects("bert") == ["bert"]


def test_a_linked_person_whose_username_changed_at_the_provider_is_still_the_same_user(sso: OidcProvider) -> None:
    sign_in(Client(), "alice")
    assert linked_subjects("alice") == ["alice"]
    assert AuditEntry.objects.get(event="user.sso_linked").details["linked_by"] == "first_sign_in"
    renamed = Person(IDP_PASSWORD, {"preferred_username": "alice.smith", "groups": ["lab-admins"]})
    sso.set_people({**PEOPLE, "alice": renamed})
    client = Client()
    assert sign_in(client, "alice").status_code == 302
    assert logged_in_as(client) == "alice"
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]
    assert SingleSignOnIdentity.objects.get(subject="alice").last_login_at is not None


def test_an_admin_links_and_unlinks_a_local_account_from_the_command_line(sso: OidcProvider) -> None:
    make_user("admin", Role.ADMIN)
    make_user("bert", Role.APPROVER)
    out = users("link-sso", "admin", "--subject", "mallory")
    assert f"Signing in as 'mallory' at {sso.issuer} now signs in 'admin'" in out
    assert "already linked" in users("link-sso", "admin", "--subject", "mallory")
    row = next(r for r in json.loads(users("list", "--json")) if r["username"] == "admin")
    assert row["sso_subject"] == "mallory"
    client = Client()
    sign_in(client, "mallory")
    assert logged_in_as(client) == "admin"

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        users("link-sso", "ghost", "--subject", "ghost")
    with pytest.raises(CommandError, match="subject: 'mallory' is already linked to 'admin'"):
        users("link-sso", "bert", "--subject", "mallory")
    with pytest.raises(CommandError, match="username: 'admin' is already linked to 'mallory'"):
        users("link-sso", "admin", "--subject", "someone-else")
    with pytest.raises(CommandError, match="'bert' is not linked"):
        users("unlink-sso", "bert")

    assert "no longer linked to 'mallory'" in users("unlink-sso", "admin", "--as", "admin")
    assert linked_subjects("admin") == []
    assert sign_in(Client(), "mallory").status_code == 403, "unlinked, the name is a local account's again"
    assert events("user.sso_linked") == [("system", "admin")]
    assert events("user.sso_unlinked") == [("admin", "admin")]
    assert AuditEntry.objects.get(event="user.sso_unlinked").details["subject"] == "mallory"


def test_a_person_in_no_mapped_group_is_refused_with_a_page_naming_the_claim_and_groups(sso: OidcProvider) -> None:
    client = Client()
    answer = sign_in(client, "carol")
    assert answer.status_code == 403
    page = answer.content.decode()
    assert "No Vigilus role" in page and "<code>groups</code> claim" in page
    for group in ("lab-admins", "lab-approvers", "lab"):
        assert f"<code>{group}</code>" in page
    assert "<code>family</code>, <code>media</code>" in page
    assert not User.objects.filter(username="carol").exists()
    assert logged_in_as(client) is None
    assert events("user.login_failed") == [("carol", "")]
    assert client.get("/").status_code == 302


def test_a_person_who_lost_their_groups_is_refused_and_keeps_their_account(sso: OidcProvider) -> None:
    sign_in(Client(), "bert")
    sso.set_people({**PEOPLE, "bert": Person(IDP_PASSWORD, {"groups": []})})
    client = Client()
    answer = sign_in(client, "bert")
    assert answer.status_code == 403 and "no <code>groups</code> claim, or an empty one" in answer.content.decode()
    assert logged_in_as(client) is None


def test_a_deactivated_user_is_refused(sso: OidcProvider) -> None:
    from vigilus.services import deactivate_user

    sign_in(Client(), "bert")
    deactivate_user(User.objects.get(username="bert"))
    client = Client()
    answer = sign_in(client, "bert")
    assert answer.status_code == 403 and "has been deactivated" in answer.content.decode()
    assert logged_in_as(client) is None


def test_a_username_claim_vigilus_cannot_use_is_refused(sso: OidcProvider, settings: Any) -> None:
    settings.OIDC_USERNAME_CLAIM = "name"
    sso.set_people({**PEOPLE, "alice": Person(IDP_PASSWORD, {"name": "Alice Smith", "groups": ["lab"]})})
    answer = sign_in(Client(), "alice")
    assert answer.status_code == 403 and "is no Vigilus username" in answer.content.decode()
    assert not User.objects.exists()


# --- the way back: next= ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "lands"),
    [("/runs/7/", "/runs/7/"), ("/approvals/#request-5", "/approvals/#request-5"), ("https://evil.example/", "/")],
    ids=["run", "fragment", "foreign-host"],
)
def test_the_link_a_person_followed_is_where_they_land(sso: OidcProvider, asked: str, lands: str) -> None:
    answer = sign_in(Client(), "alice", next_url=asked)
    assert answer.status_code == 302 and answer["Location"] == lands


# --- tokens that must not let anyone in ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, _b64(hashlib.sha256(verifier.encode()).digest())


def token_issued_to_other_app(idp: OidcProvider, nonce: str) -> str:
    """A genuine ID token from the same provider for another of its clients, for the same person and nonce."""
    discovery, other = idp.discovery(), idp.client("other-app")
    verifier, challenge = _pkce()
    query = {
        "client_id": other.client_id,
        "response_type": "code",
        "scope": "openid profile groups",
        "redirect_uri": OTHER_APP_CALLBACK,
        "state": "s",
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    back = sign_in_at_provider(
        requests.Session(), f"{discovery['authorization_endpoint']}?{urlencode(query)}", "alice", IDP_PASSWORD
    )
    code = parse_qs(urlsplit(back).query)["code"][0]
    answer = requests.post(
        discovery["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": OTHER_APP_CALLBACK,
            "code_verifier": verifier,
        },
        auth=(other.client_id, other.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id_token"]


def _tampered(token: str, **claims: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    return ".".join((header, _b64(json.dumps({**body, **claims}).encode()), signature))


def _signed_by_another_key(token: str) -> str:
    claims, header = jwt.decode(token, options={"verify_signature": False}), jwt.get_unverified_header(token)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({**claims, "groups": ["lab-admins"]}, key, algorithm="RS256", headers={"kid": header["kid"]})


def _unsigned(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.encode({**claims, "sub": "root"}, None, algorithm="none")


FORGERIES: dict[str, Callable[[str], str]] = {
    "claims-edited": lambda token: _tampered(token, sub="carol", preferred_username="root"),
    "signed-by-another-key": _signed_by_another_key,
    "alg-none": _unsigned,
}


def _callback_with_id_token(
    client: Client, idp: OidcProvider, monkeypatch: pytest.MonkeyPatch, swap: Callable[[str, str], str]
) -> Any:
    """Sign in for real, but hand the dashboard the ID token `swap(genuine, nonce)` makes instead of the
    provider's, as an attacker between them (or a provider bug) would."""
    authorize = start(client)
    nonce = parse_qs(urlsplit(authorize).query)["nonce"][0]
    real_get_token = OidcBackend.get_token

    def get_token(backend: OidcBackend, payload: dict[str, Any]) -> dict[str, Any]:
        answer = real_get_token(backend, payload)
        return {**answer, "id_token": swap(answer["id_token"], nonce)}

    monkeypatch.setattr(OidcBackend, "get_token", get_token)
    return come_back(client, sign_in_at_provider(requests.Session(), authorize, "alice", IDP_PASSWORD))


def assert_refused_unverified(client: Client, answer: Any, because: str) -> None:
    assert answer.status_code == 403, answer.content[:300]
    page = answer.content.decode()
    assert "Sign-in could not be verified" in page and because in page
    assert logged_in_as(client) is None
    assert not User.objects.exists()
    assert events("user.login_failed") == [("unknown", "")]


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_a_tampered_id_token_is_refused(sso: OidcProvider, monkeypatch: pytest.MonkeyPatch, forgery: str) -> None:
    client = Client()
    answer = _callback_with_id_token(client, sso, monkeypatch, lambda token, nonce: FORGERIES[forgery](token))
    because = "does not advertise" if forgery == "alg-none" else "Signature verification failed"
    assert_refused_unverified(client, answer, because)


def test_an_id_token_issued_to_another_application_is_refused(
    sso: OidcProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = Client()
    answer = _callback_with_id_token(
        client, sso, monkeypatch, lambda token, nonce: token_issued_to_other_app(sso, nonce)
    )
    assert_refused_unverified(client, answer, "Audience doesn")


def test_an_id_token_of_another_sign_in_is_refused(sso: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, str] = {}

    def keep(token: str, nonce: str) -> str:
        captured.setdefault("token", token)
        return token

    earlier = Client()
    _callback_with_id_token(earlier, sso, monkeypatch, keep)  # alice signs in; her ID token is captured
    assert logged_in_as(earlier) == "alice"
    monkeypatch.undo()
    client = Client()
    answer = _callback_with_id_token(client, sso, monkeypatch, lambda token, nonce: captured["token"])
    assert answer.status_code == 403 and "nonce is not this sign-in" in answer.content.decode()
    assert logged_in_as(client) is None


def test_a_callback_used_twice_is_refused(sso: OidcProvider) -> None:
    client = Client()
    back = sign_in_at_provider(requests.Session(), start(client), "alice", IDP_PASSWORD)
    assert come_back(client, back).status_code == 302
    stranger = Client()
    answer = come_back(stranger, back)  # a stolen callback URL, in another browser
    assert answer.status_code == 403 and logged_in_as(stranger) is None


def test_a_wrong_client_secret_is_refused_naming_the_provider_answer(sso: OidcProvider, settings: Any) -> None:
    settings.OIDC_CLIENT_SECRET = "not-the-secret"
    answer = sign_in(Client(), "alice")
    assert answer.status_code == 403
    assert "invalid_client" in answer.content.decode() and "not-the-secret" not in answer.content.decode()


def test_an_unreachable_provider_is_said_so(db: None, settings: Any) -> None:
    provider_metadata.forget()
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    settings.OIDC_CLIENT_ID, settings.OIDC_ROLES, settings.OIDC_NAME = "vigilus", ROLES, "Test IdP"
    answer = Client().get("/oidc/authenticate/")
    assert answer.status_code == 502 and "could not ask Test IdP" in answer.content.decode()


# --- logout --------------------------------------------------------------------------------------------------------


def test_logout_ends_the_session_at_the_provider_too(sso: OidcProvider) -> None:
    client, at_idp = Client(), requests.Session()
    come_back(client, sign_in_at_provider(at_idp, start(client), "alice", IDP_PASSWORD))
    answer = client.post("/logout/")
    assert logged_in_as(client) is None
    end = urlsplit(answer["Location"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == sso.discovery()["end_session_endpoint"]
    query = parse_qs(end.query)
    assert query["post_logout_redirect_uri"] == [AFTER_LOGOUT] and query["client_id"] == ["vigilus"]
    assert jwt.decode(query["id_token_hint"][0], options={"verify_signature": False})["sub"] == "alice"
    assert events("user.logout") == [("alice", "")]

    confirm = at_idp.get(answer["Location"], timeout=10)  # the provider asks "sign out?"; say yes
    form = {"xsrf": confirm.text.split('name="xsrf" value="')[1].split('"')[0], "logout": "yes"}
    done = at_idp.post(f"{sso.issuer}/session/end/confirm", data=form, allow_redirects=False, timeout=10)
    assert done.headers["Location"] == AFTER_LOGOUT
    again = at_idp.get(start(Client()), allow_redirects=True, timeout=10)
    assert 'name="password"' in again.text, "the provider's session ended: it asks for the password again"


def test_a_password_login_logs_out_locally(sso: OidcProvider) -> None:
    make_user("vera", Role.VIEWER)
    client = Client()
    client.post("/login/", {"username": "vera", "password": PASSWORD})
    answer = client.post("/logout/")
    assert answer["Location"] == "/login/" and logged_in_as(client) is None


def test_without_an_end_session_endpoint_logout_stays_local(db: None, settings: Any) -> None:
    with provider_or_skip(end_session=False) as quiet:
        configure(settings, quiet)
        assert "end_session_endpoint" not in quiet.discovery()
        client = Client()
        sign_in(client, "alice")
        assert logged_in_as(client) == "alice"
        answer = client.post("/logout/")
        assert answer["Location"] == "/login/" and logged_in_as(client) is None


# --- password login switched off ------------------------------------------------------------------------------------


def test_password_login_switched_off_refuses_passwords_and_the_users_command_still_recovers(
    sso: OidcProvider, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LOCAL_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = ["vigilus.oidc.backend.OidcBackend"]
    make_user("alice", Role.ADMIN)
    page = Client().get("/login/").content.decode()
    assert "Sign in with Test IdP" in page and 'type="password"' not in page
    client = Client()
    answer = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert answer.status_code == 403 and "Password login is switched off here" in answer.content.decode()
    assert logged_in_as(client) is None
    admin_login = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert admin_login.status_code == 200 and logged_in_as(client) is None

    users("link-sso", "alice", "--subject", "alice")  # her local account is her identity at the provider
    sign_in(client, "alice")  # single sign-on still lets her in
    assert logged_in_as(client) == "alice"

    # The provider is down: `vigilus users` still sets a password, and VIGILUS_LOCAL_LOGIN=true lets it in.
    monkeypatch.setenv("RECOVERY_PW", "a-long-recovery-passphrase")
    call_command("users", "set-password", "alice", "--password-env", "RECOVERY_PW")
    settings.LOCAL_LOGIN = True
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    recovered = Client()
    recovered.post("/login/", {"username": "alice", "password": "a-long-recovery-passphrase"})
    assert logged_in_as(recovered) == "alice"


# --- configuration -------------------------------------------------------------------------------------------------


def test_the_role_map_reads_pairs_and_refuses_what_it_cannot_read() -> None:
    assert parse_role_map("lab-admins=admin, lab-approvers=Approver,lab=viewer,") == ROLES
    assert parse_role_map("cn=admins,ou=groups,dc=lab=admin\ncn=ops,dc=lab=viewer") == {
        "cn=admins,ou=groups,dc=lab": "admin",
        "cn=ops,dc=lab": "viewer",
    }
    assert parse_role_map("") == {}
    for bad, says in [("lab", "is not GROUP=ROLE"), ("lab=root", "the roles are"), ("a=admin,a=viewer", "two roles")]:
        with pytest.raises(ImproperlyConfigured, match=says):
            parse_role_map(bad)


def test_settings_that_would_let_nobody_in_are_refused() -> None:
    check_settings(issuer="", client_id="", roles={}, local_login=True)
    check_settings(issuer="https://auth.lab/", client_id="vigilus", roles=ROLES, local_login=False)
    cases = [
        ({"issuer": "", "client_id": "", "roles": {}, "local_login": False}, "nobody could log in"),
        ({"issuer": "https://auth.lab", "client_id": "", "roles": ROLES, "local_login": True}, "CLIENT_ID"),
        ({"issuer": "https://auth.lab", "client_id": "v", "roles": {}, "local_login": True}, "maps no group"),
        ({"issuer": "auth.lab", "client_id": "v", "roles": ROLES, "local_login": True}, "http\\(s\\) URL"),
    ]
    for kwargs, says in cases:
        with pytest.raises(ImproperlyConfigured, match=says):
            check_settings(**kwargs)


def test_the_environment_configures_it_with_the_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "oidc-secret"
    secret.write_text("s3cret-from-a-file\n")
    env = {
        **os.environ,
        "VIGILUS_DATA_DIR": str(tmp_path / "data"),
        "VIGILUS_OIDC_ISSUER": "https://auth.lab.example/application/o/vigilus/",
        "VIGILUS_OIDC_CLIENT_ID": "vigilus",
        "VIGILUS_OIDC_CLIENT_SECRET_FILE": str(secret),
        "VIGILUS_OIDC_ROLES": "lab-admins=admin,lab=viewer",
        "VIGILUS_LOCAL_LOGIN": "false",
    }
    env.pop("VIGILUS_OIDC_CLIENT_SECRET", None)
    code = (
        "import json; import vigilus.settings as s; "
        "print(json.dumps([s.OIDC_CLIENT_SECRET == 's3cret-from-a-file', s.OIDC_ROLES, s.OIDC_SCOPES, "
        "s.OIDC_ROLE_CLAIM, s.OIDC_NAME, s.AUTHENTICATION_BACKENDS]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "vigilus.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [
        True,
        {"lab-admins": "admin", "lab": "viewer"},
        "openid email profile groups",
        "groups",
        "single sign-on",
        ["vigilus.oidc.backend.OidcBackend"],
    ]
    refused = subprocess.run(
        [sys.executable, "-c", "import vigilus.settings"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "vigilus.settings", "VIGILUS_OIDC_ROLES": "lab=superuser"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0 and "VIGILUS_OIDC_ROLES: 'lab=superuser' names the role" in refused.stderr
