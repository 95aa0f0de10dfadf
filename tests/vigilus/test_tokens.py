"""Personal access tokens: `vigilus tokens add|list|revoke`, Settings > API tokens, and what is kept of a token
(its hash only: never the token, in the database, the audit log or the logs)."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client

from audit.models import AuditEntry
from tests.conftest import make_user
from vigilus.choices import Role
from vigilus.models import ApiToken
from vigilus.services import TOKEN_PREFIX, authenticate_token, create_token

pytestmark = pytest.mark.django_db
TOKEN = re.compile(r"vgl_[A-Za-z0-9_-]{43}")


def tokens(*args: str) -> str:
    out = StringIO()
    call_command("tokens", *args, stdout=out)
    return out.getvalue()


def api_get(token: str, url: str = "/api/v1/runs") -> int:
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}").get(url).status_code


# --- the command ---------------------------------------------------------------------------------------------


def test_add_with_json_prints_the_token_once_and_it_works(approver_user: User) -> None:
    data = json.loads(tokens("add", "ci", "--role", "approver", "--as", "bert", "--json"))
    assert TOKEN.fullmatch(data["token"])
    assert (data["name"], data["user"], data["role"], data["effective_role"], data["state"]) == (
        "ci",
        "bert",
        "approver",
        "approver",
        "active",
    )
    assert data["expires_at"] is None
    assert api_get(data["token"]) == 200
    listed = json.loads(tokens("list", "--json"))
    assert [row["name"] for row in listed] == ["ci"] and "token" not in listed[0]
    assert data["token"] not in tokens("list")


def test_add_in_text_says_when_the_person_caps_the_token(viewer_user: User) -> None:
    out = tokens("add", "dash", "--role", "approver", "--as", "vera", "--expires", "30")
    assert "It acts as viewer while vera's role is lower." in out
    clear = out.split("Token (shown once): ")[1].strip()
    assert TOKEN.fullmatch(clear)
    token = ApiToken.objects.get(name="dash")
    assert 29 <= (token.expires_at - token.created_at).days <= 30


def test_add_needs_as_naming_it(approver_user: User) -> None:
    with pytest.raises(CommandError, match="--as: name the person the token belongs to"):
        tokens("add", "ci", "--role", "viewer")
    with pytest.raises(CommandError, match="as: No active user named 'nobody'"):
        tokens("add", "ci", "--role", "viewer", "--as", "nobody")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--expires", "0"], "expires: A token lasts 1 to 3650 days"),
        (["--expires", "99999"], "expires: A token lasts 1 to 3650 days"),
    ],
)
def test_bad_expiry_is_refused_naming_the_field(approver_user: User, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        tokens("add", "ci", "--role", "viewer", "--as", "bert", *args)


def test_a_second_live_token_of_the_same_name_is_refused_until_the_first_is_revoked(approver_user: User) -> None:
    first = json.loads(tokens("add", "ci", "--role", "viewer", "--as", "bert", "--json"))["token"]
    with pytest.raises(CommandError, match="name: bert already has a token named 'ci'"):
        tokens("add", "ci", "--role", "viewer", "--as", "bert")
    assert "Revoked token 'ci' of bert." in tokens("revoke", "ci", "--as", "bert")
    assert api_get(first) == 401
    second = json.loads(tokens("add", "ci", "--role", "viewer", "--as", "bert", "--json"))["token"]
    assert api_get(second) == 200
    states = sorted(row["state"] for row in json.loads(tokens("list", "--as", "bert", "--json")))
    assert states == ["active", "revoked"]


def test_revoke_an_unknown_name_or_without_as_is_refused(approver_user: User) -> None:
    with pytest.raises(CommandError, match="bert has no live token named 'ci'"):
        tokens("revoke", "ci", "--as", "bert")
    with pytest.raises(CommandError, match="--as"):
        tokens("revoke", "ci")


def test_list_filters_by_person_and_shows_the_acting_role(approver_user: User, viewer_user: User) -> None:
    tokens("add", "ci", "--role", "submitter", "--as", "bert")
    tokens("add", "dash", "--role", "approver", "--as", "vera")
    rows = {row["name"]: row for row in json.loads(tokens("list", "--json"))}
    assert (rows["ci"]["effective_role"], rows["dash"]["effective_role"]) == ("submitter", "viewer")
    assert [row["name"] for row in json.loads(tokens("list", "--as", "vera", "--json"))] == ["dash"]
    assert "never" in tokens("list")  # last used


# --- what is kept --------------------------------------------------------------------------------------------


def _everything_stored() -> str:
    """Every row of every table, as text."""
    rows = []
    for model in apps.get_models():
        rows.extend(str(row) for row in model._default_manager.values())
    return "\n".join(rows)


def test_only_the_hash_is_stored_and_the_token_is_in_no_table_audit_entry_or_log(
    approver_user: User, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clear = json.loads(tokens("add", "ci", "--role", "approver", "--as", "bert", "--json"))["token"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {clear}")
    assert client.post("/api/v1/tasks", data='{"task": "uptime"}', content_type="application/json").status_code == 201
    assert client.post("/api/v1/tasks", data="{oops", content_type="application/json").status_code == 400
    assert client.get("/api/v1/runs").status_code == 200
    tokens("revoke", "ci", "--as", "bert")
    assert client.get("/api/v1/runs").status_code == 401

    token = ApiToken.objects.get(name="ci")
    assert token.token_hash == hashlib.sha256(clear.encode()).hexdigest()
    secret_part = clear.removeprefix(TOKEN_PREFIX)
    assert secret_part not in _everything_stored()
    assert AuditEntry.objects.filter(event__in=["token.created", "token.revoked", "api.request"]).count() == 4
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "refused the revoked API token 'ci' of bert" in logged
    assert secret_part not in logged


def test_a_token_typed_into_a_task_is_masked(approver_user: User) -> None:
    """The prefix lets the redactor recognise a token pasted where it does not belong."""
    _, clear = create_token(approver_user, name="ci", role="submitter")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {clear}")
    body = json.dumps({"task": f"use {clear} to call the API"})
    run = client.post("/api/v1/tasks", data=body, content_type="application/json").json()
    assert run["task"] == "use [REDACTED] to call the API"


def test_last_used_is_noted_on_use(approver_user: User) -> None:
    token, clear = create_token(approver_user, name="ci", role="viewer")
    assert token.last_used_at is None
    assert authenticate_token(clear) is not None
    token.refresh_from_db()
    assert token.last_used_at is not None


# --- Settings > API tokens -----------------------------------------------------------------------------------


def test_settings_makes_a_token_shown_once_and_lists_it(viewer_client: Client, viewer_user: User) -> None:
    page = viewer_client.post("/settings/tokens/", {"name": "phone", "role": "viewer", "expires_days": "7"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    (clear,) = TOKEN.findall(page.content.decode())
    assert api_get(clear) == 200
    later = viewer_client.get("/settings/").content.decode()
    assert "phone" in later and not TOKEN.search(later)
    assert ApiToken.objects.get(name="phone").user == viewer_user


def test_settings_refuses_a_bad_token_form_naming_the_field(viewer_client: Client) -> None:
    page = viewer_client.post("/settings/tokens/", {"name": "", "role": "root"})
    content = page.content.decode()
    assert "This field is required" in content and "Select a valid choice" in content
    assert not ApiToken.objects.exists()


def test_settings_revokes_ones_own_token_but_not_someone_elses(viewer_client: Client, viewer_user: User) -> None:
    own, own_clear = create_token(viewer_user, name="mine", role="viewer")
    other_person = make_user("otto", Role.APPROVER)
    theirs, theirs_clear = create_token(other_person, name="theirs", role="viewer")
    assert viewer_client.post(f"/settings/tokens/{theirs.pk}/revoke/").status_code == 403
    assert api_get(theirs_clear) == 200
    assert viewer_client.post(f"/settings/tokens/{own.pk}/revoke/").status_code == 302
    assert api_get(own_clear) == 401
    assert "theirs" not in viewer_client.get("/settings/").content.decode()  # each person sees their own tokens


def test_an_admin_may_revoke_anyones_token(admin_client: Client, viewer_user: User) -> None:
    token, clear = create_token(viewer_user, name="dash", role="viewer")
    assert admin_client.post(f"/settings/tokens/{token.pk}/revoke/").status_code == 302
    assert api_get(clear) == 401
    entry = AuditEntry.objects.get(event="token.revoked")
    assert (entry.actor, entry.target, entry.details) == ("alice", "dash", {"owner": "vera"})
